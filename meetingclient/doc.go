// Package meetingclient calls the Huawei Cloud Meeting control API: it
// disconnects participants ([Client.HangUp]), obtains meeting control tokens
// ([Client.CreateConfToken]) and lists who is in a meeting
// ([Client.RealTimeInfo]).
//
// It owns the HTTP transport (one pooled [net/http.Transport], TLS 1.2 or
// later with verification always on) and the classification of every
// failure into a [Class]. The classification is decided once, here, where the
// error enters the program: callers ask [ClassOf] or use [errors.As] with
// [*APIError] instead of looking at status codes or vendor codes themselves.
//
// Every call makes exactly one HTTP attempt bounded by [Config.Timeout]. The
// package never retries, never sleeps, never caches or refreshes tokens and
// never logs: retry policy, rate limiting, token refresh and logging belong to
// the caller. Tokens and host passwords never appear in error strings.
//
// It starts no spans: the caller's span is the call's. Only with
// [Config.TracePropagation] does it send that span's W3C traceparent and
// tracestate to the vendor, a third party.
package meetingclient
