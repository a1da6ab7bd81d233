package worker

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/consumer"
	"github.com/hangup-dev/hangup/internal/topology"
)

// field is the field at path ("Topology.Replicas") in the struct v points to.
func field(v reflect.Value, path string) reflect.Value {
	v = reflect.Indirect(v)
	for _, name := range strings.Split(path, ".") {
		v = v.FieldByName(name)
	}
	return v
}

// bump changes the value of f.
func bump(t *testing.T, f reflect.Value) {
	switch f.Kind() {
	case reflect.Int, reflect.Int64:
		f.SetInt(f.Int() + int64(time.Second))
	case reflect.Float64:
		f.SetFloat(f.Float() + 1)
	case reflect.String:
		f.SetString(f.String() + "x")
	default:
		t.Fatalf("cannot bump a %s", f.Kind())
	}
}

// The tables that name a part's fields by the worker's settings match the
// functions that fill the parts' configs: each setting fills the field the
// table says, and every field filled is in the table.
func TestPartFieldTablesMatchTheConfigsTheyFill(t *testing.T) {
	parts := map[string]struct {
		fill   func(*Config) any
		fields map[string]string
	}{
		"dispatcher": {func(c *Config) any { return c.dispatcherConfig() }, dispatcherFields},
		"consumer":   {func(c *Config) any { return c.consumerConfig() }, consumerFields},
	}
	for name, p := range parts {
		t.Run(name, func(t *testing.T) {
			var base Config
			base.SetDefaults()
			before := reflect.ValueOf(p.fill(&base))
			for i := range before.NumField() {
				if !before.Field(i).IsZero() {
					require.Contains(t, p.fields, before.Type().Field(i).Name, "a field the worker fills")
				}
			}
			for partField, setting := range p.fields {
				c := base
				bump(t, field(reflect.ValueOf(&c), setting))
				after := reflect.ValueOf(p.fill(&c))
				require.NotEqual(t, before.FieldByName(partField).Interface(), after.FieldByName(partField).Interface(),
					"%s fills %s", setting, partField)
			}
		})
	}
	for _, setting := range topologyFields {
		require.True(t, field(reflect.ValueOf(&Config{}), setting).IsValid(), setting)
	}
}

func TestCheckNamesTheSettingOfEachPartsError(t *testing.T) {
	require.NoError(t, Config{}.Check())
	cases := []struct {
		part, field string
		mod         func(*Config)
	}{
		{"worker", "ShutdownTimeout", func(c *Config) { c.ShutdownTimeout = -time.Second }},
		{"topology", "Topology.Replicas", func(c *Config) { c.Topology.Replicas = 9 }},
		{"topology", "Topology.ResultSubjectPrefix", func(c *Config) { c.Topology.ResultSubjectPrefix = "a.*" }},
		{"dispatcher", "MaxBatch", func(c *Config) { c.MaxBatch = 20000 }},
		{"dispatcher", "RetryMaxInterval", func(c *Config) { c.RetryInitial = time.Minute; c.RetryMaxInterval = time.Second }},
		{"dispatcher", "DeferInitial, DeferMax", func(c *Config) { c.DeferMax = -time.Hour }},
		{"consumer", "MaxDeliveries", func(c *Config) { c.MaxDeliveries = 1 }},
		{"consumer", "MaxParticipants", func(c *Config) { c.MaxParticipants = 20000 }},
		{"meetingclient", "APIBaseURL", func(c *Config) { c.APIBaseURL = "ftp://example.com" }},
		{"meetingclient", "APICAFile", func(c *Config) { c.APICAFile = "/nonexistent/ca.pem" }},
		{"meetingclient", "APITimeout", func(c *Config) { c.APITimeout = -time.Second }},
	}
	for _, tc := range cases {
		t.Run(tc.part+" "+tc.field, func(t *testing.T) {
			var c Config
			tc.mod(&c)
			err := c.Check()
			var se *SettingError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Equal(t, tc.field, se.Field)
			require.NotContains(t, se.Err.Error(), tc.field+":", "the rule without the name")
			require.Len(t, leaves(err), 1, "one error: %v", err)
		})
	}
}

// leaves are the errors joined in err, however deeply.
func leaves(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}

// The consumer's defaults name the priority group and the partition
// subjects that topology provisions.
func TestConsumerDefaultsMatchTheTopology(t *testing.T) {
	d := consumer.DefaultConfig()
	require.Equal(t, topology.PriorityGroup, d.PriorityGroup)
	require.Equal(t, topology.PartitionPrefix, d.PartitionPrefix)
}
