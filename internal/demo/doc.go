// Package demo runs hangup end to end on embedded defaults: an in-process
// JetStream server, the meeting API simulator on a loopback port, one
// worker, and a load generator that publishes requests over many
// conferences with tokens obtained from the simulator's token API. At the
// end it reads the outcome streams back and checks them against what the
// simulator really did. It owns these parts for the length of one run.
package demo
