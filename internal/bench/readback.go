package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/schemas"
)

// readStream calls fn with every message of a stream, oldest first. Like
// audit.Read, but fn also gets the message's metadata (its stream
// timestamp).
func readStream(ctx context.Context, js jetstream.JetStream, name string, fn func(data []byte, md *jetstream.MsgMetadata) error) error {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	total := info.State.Msgs
	if total == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	var n uint64
	for n < total {
		batch, err := cons.Fetch(int(min(total-n, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			n++
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			if err := fn(msg.Data(), md); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if got == 0 {
			return fmt.Errorf("read %s: %d of %d messages read, then none", name, n, total)
		}
	}
	return nil
}

// readResults reads every result with the time its stream stored it.
func readResults(ctx context.Context, js jetstream.JetStream, stream string) ([]storedResult, error) {
	var out []storedResult
	err := readStream(ctx, js, stream, func(data []byte, md *jetstream.MsgMetadata) error {
		var r schemas.Result
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("result at %d: %w", md.Sequence.Stream, err)
		}
		out = append(out, storedResult{Result: r, stored: md.Timestamp})
		return nil
	})
	return out, err
}

// readDeadLetters reads every dead letter.
func readDeadLetters(ctx context.Context, js jetstream.JetStream, stream string) ([]schemas.DeadLetter, error) {
	var out []schemas.DeadLetter
	err := readStream(ctx, js, stream, func(data []byte, md *jetstream.MsgMetadata) error {
		var d schemas.DeadLetter
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("dead letter at %d: %w", md.Sequence.Stream, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
