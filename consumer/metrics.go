package consumer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	received      prometheus.Counter
	invalid       prometheus.Counter
	maxDeliveries prometheus.Counter
	partitions    prometheus.Gauge
	pinMismatches prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_messages_received_total",
			Help: "Request messages pulled (each delivery).",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_messages_invalid_total",
			Help: "Request messages that failed validation and were dead-lettered.",
		}),
		maxDeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_messages_max_deliveries_total",
			Help: "Request messages dead-lettered because their delivery count reached the limit.",
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hangup_partitions_owned",
			Help: "Partitions of the request stream this worker is assigned and pulls from.",
		}),
		pinMismatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_partition_pin_refusals_total",
			Help: "Pulls of an assigned partition answered that another worker holds it (hand-over in progress).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.invalid, m.maxDeliveries, m.partitions, m.pinMismatches} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
