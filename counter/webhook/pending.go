package webhook

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// delivery is one event to one endpoint, pending.
type delivery struct {
	key      uint64    // its sequence in the pending bucket
	next     time.Time // when it is due
	attempts uint32    // made so far
	endpoint string
	event    string
}

// encodeDelivery: 8 bytes of next (Unix nanoseconds), 4 of attempts, 1 of
// the endpoint id's length, the endpoint id, the event id.
func encodeDelivery(d delivery) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(d.next.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, d.attempts)
	b = append(b, byte(len(d.endpoint)))
	b = append(b, d.endpoint...)
	return append(b, d.event...)
}

func decodeDelivery(b []byte) (delivery, error) {
	if len(b) < 13 || len(b) < 13+int(b[12]) {
		return delivery{}, fmt.Errorf("webhook outbox holds a malformed delivery of %d bytes", len(b))
	}
	n := 13 + int(b[12])
	return delivery{next: time.Unix(0, int64(binary.BigEndian.Uint64(b))), attempts: binary.BigEndian.Uint32(b[8:]),
		endpoint: string(b[13:n]), event: string(b[n:])}, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// removeDelivery deletes the pending delivery at k, and the event's body
// with its last delivery. It reports whether the delivery was there.
func removeDelivery(tx *bolt.Tx, k []byte) (bool, error) {
	pb := tx.Bucket(pendingBucket)
	v := pb.Get(k)
	if v == nil {
		return false, nil // removed with its endpoint meanwhile
	}
	d, err := decodeDelivery(v)
	if err != nil {
		return false, err
	}
	if err := pb.Delete(k); err != nil {
		return false, err
	}
	bb := tx.Bucket(bodiesBucket)
	body := bb.Get([]byte(d.event))
	if len(body) < 4 {
		panic(fmt.Sprintf("BUG: pending delivery of event %s without its body", d.event))
	}
	refs := binary.BigEndian.Uint32(body)
	if refs <= 1 {
		return true, bb.Delete([]byte(d.event))
	}
	nb := binary.BigEndian.AppendUint32(nil, refs-1)
	return true, bb.Put([]byte(d.event), append(nb, body[4:]...))
}

// attempt is a due delivery with what sending it takes.
type attempt struct {
	delivery
	url    string
	secret []byte
	typ    string
	body   []byte
}

// due returns up to limit deliveries due at now, oldest first, skipping
// those in busy, and when the first of the others is due (zero when none).
func (o *Outbox) due(now time.Time, limit int, busy map[uint64]bool) (due []attempt, next time.Time, err error) {
	err = o.db.View(func(tx *bolt.Tx) error {
		eps := map[string]*Endpoint{}
		err := tx.Bucket(endpointsBucket).ForEach(func(k, v []byte) error {
			var ep Endpoint
			eps[string(k)] = &ep
			return json.Unmarshal(v, &ep)
		})
		if err != nil {
			return err
		}
		bb := tx.Bucket(bodiesBucket)
		return tx.Bucket(pendingBucket).ForEach(func(k, v []byte) error {
			seq := binary.BigEndian.Uint64(k)
			if busy[seq] {
				return nil
			}
			d, err := decodeDelivery(v)
			if err != nil {
				return err
			}
			d.key = seq
			if d.next.After(now) || len(due) >= limit {
				if next.IsZero() || d.next.Before(next) {
					next = d.next
				}
				return nil
			}
			ep := eps[d.endpoint]
			body := bb.Get([]byte(d.event))
			if ep == nil || len(body) < 4 {
				panic(fmt.Sprintf("BUG: pending delivery of event %s to endpoint %s without its endpoint or body", d.event, d.endpoint))
			}
			var head struct{ Type string }
			json.Unmarshal(body[4:], &head)
			due = append(due, attempt{delivery: d, url: ep.URL, secret: []byte(ep.Secret), typ: head.Type, body: slices.Clone(body[4:])})
			return nil
		})
	})
	return due, next, err
}

// delivered removes a as delivered.
func (o *Outbox) delivered(a attempt, at time.Time) error {
	var removed bool
	err := o.db.Batch(func(tx *bolt.Tx) (err error) {
		removed, err = removeDelivery(tx, seqKey(a.key))
		return err
	})
	if err != nil {
		return err
	}
	if removed {
		o.pending.Add(-1)
		pendingTotal.Add(-1)
	}
	o.setStatus(a.endpoint, func(s *Status) { s.LastAttemptAt, s.LastSuccessAt, s.LastError = at, at, "" })
	return nil
}

// drop removes a undelivered: another node delivers its event, or its
// endpoint is removed.
func (o *Outbox) drop(a attempt) error {
	var removed bool
	err := o.db.Batch(func(tx *bolt.Tx) (err error) {
		removed, err = removeDelivery(tx, seqKey(a.key))
		return err
	})
	if err != nil || !removed {
		return err
	}
	o.pending.Add(-1)
	pendingTotal.Add(-1)
	droppedCounter.Inc()
	return nil
}

// failed records a's failure and when it is tried again.
func (o *Outbox) failed(a attempt, at, next time.Time, reason string) error {
	a.attempts++
	a.next = next
	err := o.db.Batch(func(tx *bolt.Tx) error {
		pb := tx.Bucket(pendingBucket)
		if pb.Get(seqKey(a.key)) == nil {
			return nil // removed with its endpoint meanwhile
		}
		return pb.Put(seqKey(a.key), encodeDelivery(a.delivery))
	})
	o.setStatus(a.endpoint, func(s *Status) { s.LastAttemptAt, s.LastError = at, reason })
	return err
}

func (o *Outbox) setStatus(endpoint string, f func(*Status)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.status[endpoint]
	if s == nil {
		s = &Status{}
		o.status[endpoint] = s
	}
	f(s)
}
