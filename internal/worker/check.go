package worker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/consumer"
	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// A SettingError is a setting of Config that is not valid.
type SettingError struct {
	// Field is the setting's path in Config, such as "MaxBatch" or
	// "Topology.Replicas"; for a rule that spans several settings, their
	// paths separated by ", ".
	Field string
	// Err says what is wrong, without the field's name.
	Err error
}

func (e *SettingError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *SettingError) Unwrap() error { return e.Err }

// Check reports, without connecting, every setting that New or Start would
// refuse: those of Validate and those of the parts' own constructors (the
// dispatcher's, the consumer's and the meeting API client's), each of which
// Check calls with stand-ins for their dependencies and stops again. The
// zero fields of c are read as their defaults. Each error that names a
// setting is a *SettingError; they are joined with errors.Join.
func (c Config) Check() error {
	c.SetDefaults()
	errs := []error{c.Validate()}
	d, err := dispatcher.New(c.dispatcherConfig(), dispatcher.Deps{API: standIn{}, Publisher: standIn{}})
	if err != nil {
		errs = append(errs, attribute("dispatcher config", err, dispatcherFields)...)
	} else {
		errs = append(errs, d.Stop(context.Background()))
	}
	cons, err := consumer.New(c.consumerConfig(), consumer.Deps{JetStream: standIn{}, Handler: standIn{}})
	if err != nil {
		errs = append(errs, attribute("consumer config", err, consumerFields)...)
	} else {
		errs = append(errs, cons.Stop(context.Background()))
	}
	// The meeting API client's errors do not start with the field's name;
	// each field is checked on its own instead, so that an error can only
	// be about that field.
	for field, mc := range map[string]meetingclient.Config{
		"APIBaseURL": {BaseURL: c.APIBaseURL},
		"APICAFile":  {CAFile: c.APICAFile},
		"APITimeout": {Timeout: c.APITimeout},
	} {
		client, err := meetingclient.New(mc)
		if err != nil {
			errs = append(errs, &SettingError{Field: field, Err: err})
			continue
		}
		client.Close()
	}
	return errors.Join(errs...)
}

// dispatcherConfig is the dispatcher's share of c, after SetDefaults.
func (c *Config) dispatcherConfig() dispatcher.Config {
	return dispatcher.Config{
		MaxBatch:             c.MaxBatch,
		Linger:               c.Linger,
		APIConcurrency:       c.APIConcurrency,
		ConferenceCalls:      c.ConferenceCalls,
		MaxInFlight:          c.MaxInFlight,
		RetryInitial:         c.RetryInitial,
		RetryMaxInterval:     c.RetryMaxInterval,
		RetryMaxElapsed:      c.RetryMaxElapsed,
		KeepAlive:            c.keepAlive(),
		APIRate:              c.APIRate,
		WorkerAPIConcurrency: c.WorkerAPIConcurrency,
		WorkerAPIRate:        c.WorkerAPIRate,
		BreakerThreshold:     c.BreakerThreshold,
		DeferMax:             c.DeferMax,
		DeferInitial:         c.DeferInitial,
		WorkerID:             c.WorkerID,
	}
}

// dispatcherFields names, for each dispatcher.Config field that
// dispatcherConfig sets, the setting of Config it comes from.
var dispatcherFields = map[string]string{
	"MaxBatch": "MaxBatch", "Linger": "Linger", "APIConcurrency": "APIConcurrency", "ConferenceCalls": "ConferenceCalls",
	"MaxInFlight": "MaxInFlight", "RetryInitial": "RetryInitial", "RetryMaxInterval": "RetryMaxInterval",
	"RetryMaxElapsed": "RetryMaxElapsed", "KeepAlive": "AckWait", "APIRate": "APIRate",
	"BreakerThreshold": "BreakerThreshold", "DeferMax": "DeferMax", "DeferInitial": "DeferInitial",
	"WorkerAPIConcurrency": "WorkerAPIConcurrency", "WorkerAPIRate": "WorkerAPIRate",
	"WorkerID": "WorkerID",
}

// consumerConfig is the consumer's share of c, after SetDefaults.
func (c *Config) consumerConfig() consumer.Config {
	return consumer.Config{
		Stream:          c.Topology.RequestStream,
		Durable:         c.Topology.Durable,
		SubjectPrefix:   c.Topology.RequestSubjectPrefix,
		MaxParticipants: c.MaxParticipants,
		MaxDeliveries:   c.MaxDeliveries,
		WorkerID:        c.WorkerID,
	}
}

// consumerFields names, for each consumer.Config field that consumerConfig
// sets, the setting of Config it comes from.
var consumerFields = map[string]string{
	"Stream": "Topology.RequestStream", "Durable": "Topology.Durable",
	"SubjectPrefix": "Topology.RequestSubjectPrefix", "MaxParticipants": "MaxParticipants",
	"MaxDeliveries": "MaxDeliveries", "WorkerID": "WorkerID",
}

// topologyFields names the setting of Config each topology.Config field
// comes from: Topology's own, but for the two SetDefaults copies in.
var topologyFields = func() map[string]string {
	out := map[string]string{}
	t := reflect.TypeFor[topology.Config]()
	for i := range t.NumField() {
		out[t.Field(i).Name] = "Topology." + t.Field(i).Name
	}
	out["AckWait"] = "AckWait"
	out["MaxAckPending"] = "MaxAckPending"
	return out
}()

// attribute turns the configuration error of a part into errors about
// the settings of Config. A part joins one error per broken rule, each
// starting with the names of the part's fields it is about and a colon
// ("MaxBatch: must be ..."); fields maps those names to the settings they
// come from. An error that names no such field is kept, after the part's
// label when there is one.
func attribute(label string, err error, fields map[string]string) []error {
	if err == nil {
		return nil
	}
	if se := attributeOne(err, fields); se != nil {
		return []error{se}
	}
	var out []error
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, attribute(label, e, fields)...)
		}
	case interface{ Unwrap() error }:
		if label != "" && strings.HasPrefix(err.Error(), label+": ") {
			// The part's own wrapping of its joined errors.
			return attribute(label, u.Unwrap(), fields)
		}
		out = append(out, labelled(label, err))
	default:
		out = append(out, labelled(label, err))
	}
	return out
}

func labelled(label string, err error) error {
	if label == "" {
		return err
	}
	return fmt.Errorf("%s: %w", label, err)
}

// attributeOne returns a *SettingError when err starts with the names of
// fields, or nil.
func attributeOne(err error, fields map[string]string) *SettingError {
	names, rule, ok := strings.Cut(err.Error(), ": ")
	if !ok {
		return nil
	}
	var paths []string
	for _, name := range strings.Split(names, ", ") {
		if path, ok := fields[name]; ok {
			paths = append(paths, path)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	return &SettingError{Field: strings.Join(paths, ", "), Err: ruleError{rule: rule, err: err}}
}

// ruleError is a part's error without the names it starts with.
type ruleError struct {
	rule string
	err  error
}

func (e ruleError) Error() string { return e.rule }
func (e ruleError) Unwrap() error { return e.err }

// errStandIn: a stand-in dependency was called.
var errStandIn = errors.New("worker: stand-in dependency called")

// standIn fills the parts' required dependencies when Check builds them
// only to validate their settings; nothing calls it.
type standIn struct {
	jetstream.JetStream
}

func (standIn) HangUp(context.Context, string, string, []string) (meetingclient.Response, error) {
	return meetingclient.Response{}, errStandIn
}

func (standIn) PublishResult(context.Context, *schemas.Result) (*schemas.Result, error) {
	return nil, errStandIn
}

func (standIn) PublishDeadLetter(context.Context, *schemas.DeadLetter, string) error {
	return errStandIn
}

func (standIn) Capacity(context.Context) (int, error) { return 0, errStandIn }

func (standIn) Submit(context.Context, dispatcher.Job) error { return errStandIn }

func (standIn) Fail(context.Context, dispatcher.Job, schemas.DeadLetterReason, string) error {
	return errStandIn
}

func (standIn) Reject(context.Context, dispatcher.Message, *schemas.DeadLetter, string) error {
	return errStandIn
}
