// Package deferral keeps count of the deliberate redeliveries of request
// messages: when the meeting API says "not yet" (meeting not started,
// control login locked, long flow control), the worker hands the message
// back with a delay instead of holding it, and records that here, so that
// the delivery count check does not mistake patience for a poison message.
// It owns one key-value bucket and nothing else.
package deferral
