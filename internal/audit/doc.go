// Package audit reads the result and dead-letter streams back and checks
// the worker's invariant against what was published and what the meeting
// API really did. The tests, the demo and the soak test share it. It only
// reads; it never publishes, acks or calls the API.
package audit
