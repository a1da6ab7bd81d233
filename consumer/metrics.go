package consumer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	received      prometheus.Counter
	invalid       prometheus.Counter
	maxDeliveries prometheus.Counter
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
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.invalid, m.maxDeliveries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
