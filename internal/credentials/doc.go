// Package credentials supplies meeting control tokens for conferences whose
// disconnect requests carry none that works. It owns the lookup of host
// passwords in a JetStream key-value bucket (key: conference ID, value:
// {"hostPassword": "..."}), the token API calls made with them, and the
// token cache that every worker of a deployment shares in a second bucket
// (key: conference ID), where one worker at a time obtains or renews a
// conference's token under a lease and the others use it.
//
// Files: store.go (Store: the tokens handed out, in-process cache and
// look-ups), lease.go (the lease protocol: which token everyone uses and
// who calls the token API), tokencache.go (reading and writing the token
// cache bucket with compare-and-set and TTLs), bucket.go (creating and
// opening both buckets), credentials.go (the stored value).
//
// It never writes to the bucket of host passwords: the system that
// schedules meetings does. It never hangs anybody up and never retries a
// failed hang-up; the dispatcher does both. Host passwords and tokens never
// appear in its errors, its logs or the printed form of its types.
package credentials
