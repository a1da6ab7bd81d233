// Package meetingsim simulates, in memory, the part of the Huawei Cloud
// Meeting control API that the hangup worker calls: obtaining a meeting
// control token, disconnecting participants ("HangUp") and listing who is
// online ("realTimeInfo"). It answers with the vendor's paths, headers, JSON
// shapes, HTTP statuses and error codes, as described in the project's
// API_NOTES.md.
//
// A Simulator owns its meetings (ID, host password, state, online
// participants), the control tokens it issued, the faults it injects and a
// record of every hang-up call and every participant it actually
// disconnected, so that tests can assert exactly who was disconnected, by
// which call. Faults (latency, injected errors, flow control, outages) are
// drawn from a seeded random source and never change a meeting: a call that
// failed did nothing.
//
// A token lives Config.TokenLifetime (30 minutes by default) from when it
// is issued or last kept alive; a keep-alive returns the same token. The
// vendor does not document whether a new token ends the earlier ones of
// its meeting, so Config.TokenMode chooses: TokenModeMany (the default)
// keeps every token valid until it expires, while TokenModeOneLive ends
// every earlier token of a meeting the moment a new one is issued for it,
// after which a call with an earlier token is answered 401
// CodeTokenInvalid, exactly as with an expired one. SetTokenLifetime and
// SetTokenMode change both at run time; a new lifetime applies to tokens
// issued or kept alive from then on. Stats count token calls per
// conference and the tokens the one-live rule ended.
//
// Handler serves the vendor API and, under /_sim/, a JSON admin API for
// demos and soak tests (state, faults, mode, token settings, meetings,
// records). Admin responses never carry host passwords or tokens.
//
// The package stands on its own: it never imports the project's
// meetingclient, so that it checks the client independently, and it never
// touches NATS or the network beyond the handler it returns.
package meetingsim
