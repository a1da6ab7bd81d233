// Package membership keeps the list of live workers of a deployment in a
// JetStream key-value bucket and shares out the request stream's
// partitions among them.
//
// Each worker puts a key of its own ("member.<name>.<random>") every
// TTL/3; the bucket's age limit (TTL) removes the key of a worker that
// stopped putting it. Every worker lists the keys on each beat and when a
// watch reports a put or a delete, sorts them, and takes the partitions
// whose index modulo the member count equals its place in the list. Two
// workers may briefly disagree (one has seen a join the other has not
// yet): the server's pinned consumers still let only one of them pull a
// partition.
//
// The members also share the cluster-wide vendor budget. A worker that has
// held no request for IdleAfter says so in its key, after it has cut its
// own share; the busy workers then share the idle ones' part. A worker
// that gets work again says so at once and takes its larger share only
// RaiseDelay later, once the others have taken their cut: in the group's
// views, a cut is given at once and a raise after RaiseDelay.
//
// A worker that throttles its calls on the vendor's flow control puts the
// key "throttle"; the others, watching it, slow down as well.
package membership
