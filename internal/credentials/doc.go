// Package credentials supplies meeting control tokens for conferences whose
// disconnect requests carry none. It owns the lookup of host passwords in a
// JetStream key-value bucket (key: conference ID, value:
// {"hostPassword": "..."}), the token API calls made with them, and an
// in-memory cache of the tokens, which it keeps alive before they expire
// and drops when the vendor rejects them.
//
// It never writes to the bucket: the system that schedules meetings does.
// It never hangs anybody up and never retries a failed call; the dispatcher
// does both. Host passwords and tokens never appear in its errors, its logs
// or the printed form of its types.
package credentials
