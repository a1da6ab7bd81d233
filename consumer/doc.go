// Package consumer pulls disconnect requests from the durable JetStream
// consumer, decodes and validates each one, and hands the valid ones to the
// dispatcher. It owns the pull loop and the messages until hand-over: an
// invalid message is dead-lettered here (dead letter published and
// confirmed, then acked), and a message delivered too often is handed to
// the dispatcher to fail without an API call. It never calls the vendor API
// and never publishes results of valid requests.
package consumer
