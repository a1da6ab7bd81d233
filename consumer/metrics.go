package consumer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	received      prometheus.Counter
	invalid       prometheus.Counter
	maxDeliveries prometheus.Counter
	partitions    prometheus.Gauge
	pinMismatches prometheus.Counter
	redeliveries  prometheus.Counter
	// The server's view of each consumer pulled, by consumer name (the
	// shared durable and the partitions owned; never a conference).
	pending     *prometheus.GaugeVec
	ackPending  *prometheus.GaugeVec
	redelivered *prometheus.GaugeVec
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
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_messages_redelivered_total",
			Help: "Request messages pulled that had been delivered before (deliberate deferrals included).",
		}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hangup_consumer_pending_messages",
			Help: "Messages of the stream not yet delivered by the consumer (the server's NumPending); the shared durable is reported by every worker.",
		}, []string{"consumer"}),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hangup_consumer_ack_pending_messages",
			Help: "Messages the consumer delivered that are not yet acked (the server's NumAckPending); the shared durable is reported by every worker.",
		}, []string{"consumer"}),
		redelivered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hangup_consumer_redelivered_messages",
			Help: "Messages the consumer redelivered that are not yet acked (the server's NumRedelivered); the shared durable is reported by every worker.",
		}, []string{"consumer"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.invalid, m.maxDeliveries, m.partitions, m.pinMismatches,
		m.redeliveries, m.pending, m.ackPending, m.redelivered} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
