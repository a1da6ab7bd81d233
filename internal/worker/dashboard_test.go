package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/hangup-dev/hangup/internal/meetingsim"
)

// The Grafana dashboards and Prometheus rules shipped in deploy/ query
// only metrics a running worker exports: every name in their PromQL is
// one that the worker's own registry (its Go and process collectors, the
// consumer's and the dispatcher's, and whatever else it registers) holds,
// labelled vectors without a series yet included.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	used := map[string][]string{} // metric name -> where it is used
	for _, path := range deployFiles(t, "../../deploy/prometheus/*.yaml") {
		for where, expr := range alertExprs(t, path) {
			for _, name := range metricNames(expr) {
				used[name] = append(used[name], where)
			}
		}
	}
	for _, path := range deployFiles(t, "../../deploy/grafana/*.json") {
		for where, expr := range dashboardExprs(t, path) {
			for _, name := range metricNames(expr) {
				used[name] = append(used[name], where)
			}
		}
	}
	// What the dashboard and the alerts are for: each of these is queried.
	for _, name := range []string{
		"hangup_requests_completed_total", "hangup_request_latency_seconds_bucket", "hangup_api_calls_total",
		"hangup_api_call_duration_seconds_bucket", "hangup_batch_size_bucket", "hangup_dispatcher_dead_letters_total",
		"hangup_messages_invalid_total", "hangup_messages_max_deliveries_total", "hangup_requests_held",
		"hangup_requests_deferred_total", "hangup_breaker_open", "hangup_api_rate_limit", "hangup_api_concurrency_share",
		"hangup_partitions_owned", "hangup_consumer_pending_messages", "hangup_consumer_ack_pending_messages",
		"hangup_consumer_redelivered_messages", "hangup_messages_redelivered_total", "hangup_ready",
		"process_cpu_seconds_total", "process_resident_memory_bytes",
	} {
		require.Contains(t, used, name, "deploy/ queries %s", name)
	}

	h := newHarness(t, meetingsim.Config{})
	w := h.start(nil)
	reg := w.reg
	require.True(t, registered(reg, "hangup_requests_completed_total"), "the probe finds a labelled vector without series")
	require.False(t, registered(reg, "hangup_no_such_metric_total"), "the probe finds no metric that is not there")

	var missing []string
	for name, where := range used {
		if registered(reg, name) {
			continue
		}
		// A histogram's or summary's series carry these suffixes; the
		// collector describes the metric by its base name.
		if base, ok := cutAny(name, "_bucket", "_sum", "_count"); ok && registered(reg, base) {
			continue
		}
		slices.Sort(where)
		missing = append(missing, fmt.Sprintf("%s (in %s)", name, strings.Join(slices.Compact(where), "; ")))
	}
	slices.Sort(missing)
	require.Empty(t, missing, "metrics queried in deploy/ that the worker does not export")
}

// registered reports whether reg holds a collector that describes a
// metric named name. A registry keeps the descriptions every collector
// gave (Describe) when it was registered, and refuses a second
// description of a name that differs in help or labels: a probe that
// registers is not there, and is taken out again.
func registered(reg *prometheus.Registry, name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "a probe of the deploy files test"})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}

func cutAny(s string, suffixes ...string) (string, bool) {
	for _, suf := range suffixes {
		if base, ok := strings.CutSuffix(s, suf); ok {
			return base, true
		}
	}
	return s, false
}

func deployFiles(t *testing.T, pattern string) []string {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no file matches %s", pattern)
	return paths
}

var (
	// promString is a PromQL string literal: label values, regexes and
	// label_replace arguments, which name no metric.
	promString = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promIdent  = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// metricNames returns the metric names a PromQL expression uses: the
// identifiers outside string literals that begin with hangup_, go_ or
// process_.
func metricNames(expr string) []string {
	var names []string
	for _, id := range promIdent.FindAllString(promString.ReplaceAllString(expr, `""`), -1) {
		if strings.HasPrefix(id, "hangup_") || strings.HasPrefix(id, "go_") || strings.HasPrefix(id, "process_") {
			names = append(names, id)
		}
	}
	return names
}

// ruleFile is a Prometheus rule file; unknown fields are refused, so a
// misspelt key does not pass unnoticed.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert         string            `yaml:"alert"`
			Record        string            `yaml:"record"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertExprs checks the structure of a rule file and returns the
// expression of each rule by "file: alert".
func alertExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f ruleFile
	require.NoError(t, dec.Decode(&f), "%s is a rule file", path)
	require.NotEmpty(t, f.Groups, "%s has groups", path)
	exprs := map[string]string{}
	alerts := map[string]bool{}
	for _, g := range f.Groups {
		require.NotEmpty(t, g.Name, "%s: a group has a name", path)
		require.NotEmpty(t, g.Rules, "%s: group %s has rules", path, g.Name)
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "%s: every rule of group %s is an alert", path, g.Name)
			require.False(t, alerts[r.Alert], "%s: alert %s appears once", path, r.Alert)
			alerts[r.Alert] = true
			where := filepath.Base(path) + ": " + r.Alert
			require.NotEmpty(t, strings.TrimSpace(r.Expr), "%s has expr", where)
			d, err := time.ParseDuration(r.For)
			require.NoError(t, err, "%s has for", where)
			require.Positive(t, d, "%s has for", where)
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], "%s has labels.severity", where)
			require.NotEmpty(t, r.Annotations["summary"], "%s has annotations.summary", where)
			require.NotEmpty(t, r.Annotations["description"], "%s has annotations.description", where)
			exprs[where] = r.Expr
		}
	}
	return exprs
}

// dashboardExprs checks that a dashboard is a Grafana dashboard model
// with a Prometheus data source variable and job and instance variables,
// whose panels all query through it, and returns every expression (of the
// panels' targets and of the variables' queries) by "file: title".
func dashboardExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var d struct {
		UID        string            `json:"uid"`
		Title      string            `json:"title"`
		Schema     int               `json:"schemaVersion"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(data, &d), "%s is JSON", path)
	require.NotEmpty(t, d.UID, "%s has a uid", path)
	require.NotEmpty(t, d.Title, "%s has a title", path)
	require.Positive(t, d.Schema, "%s has a schemaVersion", path)
	file := filepath.Base(path)
	exprs := map[string]string{}

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		var query string
		if json.Unmarshal(v.Query, &query) != nil {
			var q struct {
				Query string `json:"query"`
			}
			require.NoError(t, json.Unmarshal(v.Query, &q), "%s: variable %s has a query", file, v.Name)
			query = q.Query
		}
		switch v.Type {
		case "datasource":
			require.Equal(t, "prometheus", query, "%s: variable %s picks a Prometheus data source", file, v.Name)
		case "query":
			exprs[file+": variable "+v.Name] = query
		}
	}
	require.Equal(t, "datasource", vars["datasource"], "%s has a datasource variable", file)
	require.Equal(t, "query", vars["job"], "%s has a job variable", file)
	require.Equal(t, "query", vars["instance"], "%s has an instance variable", file)

	type target struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		Type    string            `json:"type"`
		Title   string            `json:"title"`
		Targets []target          `json:"targets"`
		Panels  []json.RawMessage `json:"panels"`
	}
	queried := 0
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			require.NoError(t, json.Unmarshal(r, &p))
			if p.Type == "row" {
				walk(p.Panels) // a collapsed row keeps its panels
				continue
			}
			where := file + ": " + p.Title
			require.NotEmpty(t, p.Title, "%s: every panel has a title", file)
			require.NotEmpty(t, p.Targets, "%s has targets", where)
			for _, tg := range p.Targets {
				require.NotEmpty(t, strings.TrimSpace(tg.Expr), "%s: target %s has expr", where, tg.RefID)
				require.Equal(t, "${datasource}", tg.Datasource.UID, "%s: target %s queries the datasource variable", where, tg.RefID)
				require.NotContains(t, exprs, where+" "+tg.RefID, "%s: refIds are unique", where)
				exprs[where+" "+tg.RefID] = tg.Expr
			}
			queried++
		}
	}
	walk(d.Panels)
	require.Positive(t, queried, "%s has panels", file)
	return exprs
}
