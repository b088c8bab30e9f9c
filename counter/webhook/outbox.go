package webhook

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the outbox's file in its directory.
const FileName = "outbox.db"

// ErrNotFound means there is no endpoint with the id.
var ErrNotFound = errors.New("webhook: no such endpoint")

// The outbox is one bbolt file: every write is one transaction, fsynced
// before it returns, so an event is on disk before it counts as emitted
// and a delivery leaves only once its 2xx is on disk.
var (
	endpointsBucket = []byte("endpoints") // id → Endpoint as JSON, with its secret
	emittedBucket   = []byte("emitted")   // event id → 8 bytes, Unix nanoseconds of its emission: ids are never emitted twice
	bodiesBucket    = []byte("bodies")    // event id → 4 bytes, deliveries pending, then the body; gone with its last delivery
	pendingBucket   = []byte("pending")   // 8 bytes of sequence → a delivery (see encodeDelivery), in emission order
	metaBucket      = []byte("meta")      // nodeKey, sharedKey
)

var (
	nodeKey   = []byte("node")   // the outbox's id among the nodes that share endpoints (Registry)
	sharedKey = []byte("shared") // present once the outbox's own endpoints went into a Registry
)

// Outbox keeps endpoints, emitted event ids and pending deliveries on disk.
type Outbox struct {
	db      *bolt.DB
	node    string        // its id, kept in the file: see Node
	notify  chan struct{} // a delivery was queued
	pending atomic.Int64

	mu     sync.Mutex
	status map[string]*Status // by endpoint id, since this process started
}

// Status is what an operator sees of an endpoint.
type Status struct {
	Endpoint
	Pending       int       `json:"pending"`                  // deliveries waiting for their 2xx
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"` // since this process started
	LastSuccessAt time.Time `json:"last_success_at,omitzero"` // since this process started
	LastError     string    `json:"last_error,omitempty"`     // of the last attempt, when it failed
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"` // of its earliest pending delivery
}

// Open opens the outbox in dir, creating both when they do not exist.
// One process at a time holds it.
func Open(dir string) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the webhook outbox directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("cannot open the webhook outbox %q: %w", path, err)
	}
	o := &Outbox{db: db, notify: make(chan struct{}, 1), status: map[string]*Status{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{endpointsBucket, emittedBucket, bodiesBucket, pendingBucket, metaBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(metaBucket)
		if id := meta.Get(nodeKey); id != nil {
			o.node = string(id)
		} else {
			var raw [8]byte
			rand.Read(raw[:])
			o.node = "ob_" + hex.EncodeToString(raw[:])
			if err := meta.Put(nodeKey, []byte(o.node)); err != nil {
				return err
			}
		}
		o.pending.Store(int64(tx.Bucket(pendingBucket).Stats().KeyN))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot open the webhook outbox %q: %w", path, err)
	}
	pendingTotal.Add(o.pending.Load())
	return o, nil
}

// Node returns the outbox's id: random, made when its file was created
// and kept in it, so that a restart keeps the events this outbox claimed
// from other nodes' (Claimer). A copy of the file is the same node: do not
// start a node on a copy of another's outbox.
func (o *Outbox) Node() string { return o.node }

// Close closes the file. Call it once, after the deliverer stopped.
func (o *Outbox) Close() error {
	pendingTotal.Add(-o.pending.Load())
	return o.db.Close()
}

// Emit writes ev to the outbox, with one pending delivery for each
// endpoint subscribed to its type, and returns once that is on disk. An id
// emitted before is not emitted again: Emit reports false and writes
// nothing. With no endpoint subscribed the id is recorded all the same:
// an endpoint receives the events emitted after it was added. Concurrent
// calls share a transaction and its fsync.
func (o *Outbox) Emit(ev Event, now time.Time) (emitted bool, err error) {
	ev, body, err := prepare(ev, now)
	if err != nil {
		return false, err
	}
	var queued int
	err = o.db.Batch(func(tx *bolt.Tx) (err error) {
		emitted, queued, err = emit(tx, ev, body)
		return err
	})
	if err != nil {
		outboxErrors.Inc()
		return false, fmt.Errorf("cannot write event %s to the webhook outbox: %w", ev.ID, err)
	}
	if emitted {
		eventsCounter(ev.Type).Inc()
		o.queued(queued)
	}
	return emitted, nil
}

// EmitAll emits the events of evs not emitted before, as Emit does, in
// one transaction, and returns how many it emitted. When every id was
// emitted before it writes nothing: a flush emits what the ledger says
// every time, and only what is new is written.
func (o *Outbox) EmitAll(evs []Event, now time.Time) (int, error) {
	var fresh []Event
	err := o.db.View(func(tx *bolt.Tx) error {
		em := tx.Bucket(emittedBucket)
		for _, ev := range evs {
			if em.Get([]byte(ev.ID)) == nil {
				fresh = append(fresh, ev)
			}
		}
		return nil
	})
	if err != nil || len(fresh) == 0 {
		return 0, err
	}
	bodies := make([][]byte, len(fresh))
	for i := range fresh {
		if fresh[i], bodies[i], err = prepare(fresh[i], now); err != nil {
			return 0, err
		}
	}
	var queued int
	var types []string
	err = o.db.Update(func(tx *bolt.Tx) error {
		for i, ev := range fresh {
			emitted, q, err := emit(tx, ev, bodies[i])
			if err != nil {
				return err
			}
			if emitted {
				types = append(types, ev.Type)
				queued += q
			}
		}
		return nil
	})
	if err != nil {
		outboxErrors.Add(len(fresh))
		return 0, fmt.Errorf("cannot write %d events to the webhook outbox: %w", len(fresh), err)
	}
	for _, t := range types {
		eventsCounter(t).Inc()
	}
	o.queued(queued)
	return len(types), nil
}

func prepare(ev Event, now time.Time) (Event, []byte, error) {
	if !KnownType(ev.Type) || !strings.HasPrefix(ev.ID, "evt_") {
		panic(fmt.Sprintf("BUG: emitting an event of type %q with id %q", ev.Type, ev.ID))
	}
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = now.UTC()
	}
	body, err := json.Marshal(ev)
	return ev, body, err
}

// emit writes ev unless its id was emitted before, and returns whether it
// did and the deliveries it queued.
func emit(tx *bolt.Tx, ev Event, body []byte) (emitted bool, queued int, err error) {
	em := tx.Bucket(emittedBucket)
	if em.Get([]byte(ev.ID)) != nil {
		return false, 0, nil
	}
	var at [8]byte
	binary.BigEndian.PutUint64(at[:], uint64(ev.CreatedAt.UnixNano()))
	if err := em.Put([]byte(ev.ID), at[:]); err != nil {
		return false, 0, err
	}
	pb := tx.Bucket(pendingBucket)
	err = tx.Bucket(endpointsBucket).ForEach(func(_, v []byte) error {
		var ep Endpoint
		if err := json.Unmarshal(v, &ep); err != nil {
			return err
		}
		if !slices.Contains(ep.Events, ev.Type) {
			return nil
		}
		seq, err := pb.NextSequence()
		if err != nil {
			return err
		}
		queued++
		return pb.Put(seqKey(seq), encodeDelivery(delivery{next: ev.CreatedAt, endpoint: ep.ID, event: ev.ID}))
	})
	if err != nil || queued == 0 {
		return true, queued, err
	}
	v := binary.BigEndian.AppendUint32(nil, uint32(queued))
	return true, queued, tx.Bucket(bodiesBucket).Put([]byte(ev.ID), append(v, body...))
}

func (o *Outbox) queued(n int) {
	if n == 0 {
		return
	}
	o.pending.Add(int64(n))
	pendingTotal.Add(int64(n))
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Add adds an endpoint.
func (o *Outbox) Add(ep Endpoint) error {
	b, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	return o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(endpointsBucket).Put([]byte(ep.ID), b)
	})
}

// Endpoints returns the endpoints, oldest first, without their secrets.
func (o *Outbox) Endpoints() ([]Status, error) {
	var out []Status
	next := map[string]time.Time{}
	pending := map[string]int{}
	err := o.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(endpointsBucket).ForEach(func(_, v []byte) error {
			var s Status
			if err := json.Unmarshal(v, &s.Endpoint); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(pendingBucket).ForEach(func(_, v []byte) error {
			d, err := decodeDelivery(v)
			if err != nil {
				return err
			}
			pending[d.endpoint]++
			if n, ok := next[d.endpoint]; !ok || d.next.Before(n) {
				next[d.endpoint] = d.next
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read the webhook outbox: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range out {
		s := &out[i]
		if st := o.status[s.ID]; st != nil {
			s.LastAttemptAt, s.LastSuccessAt, s.LastError = st.LastAttemptAt, st.LastSuccessAt, st.LastError
		}
		s.Secret, s.Pending, s.NextAttemptAt = "", pending[s.ID], next[s.ID]
	}
	slices.SortFunc(out, func(a, b Status) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Remove removes the endpoint and drops its pending deliveries, and
// returns how many it dropped.
func (o *Outbox) Remove(id string) (dropped int, err error) {
	err = o.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(endpointsBucket).Get([]byte(id)) == nil {
			return fmt.Errorf("%w %q", ErrNotFound, id)
		}
		dropped, err = removeEndpoint(tx, id)
		return err
	})
	if err != nil {
		return 0, err
	}
	o.removed([]string{id}, dropped)
	return dropped, nil
}

// removeEndpoint deletes the endpoint id and its pending deliveries, and
// returns how many deliveries it deleted.
func removeEndpoint(tx *bolt.Tx, id string) (int, error) {
	if err := tx.Bucket(endpointsBucket).Delete([]byte(id)); err != nil {
		return 0, err
	}
	var keys [][]byte
	err := tx.Bucket(pendingBucket).ForEach(func(k, v []byte) error {
		d, err := decodeDelivery(v)
		if err == nil && d.endpoint == id {
			keys = append(keys, slices.Clone(k))
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if _, err := removeDelivery(tx, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// removed accounts for endpoints removed with their dropped deliveries.
func (o *Outbox) removed(ids []string, dropped int) {
	o.pending.Add(-int64(dropped))
	pendingTotal.Add(-int64(dropped))
	droppedCounter.Add(dropped)
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		delete(o.status, id)
	}
}

// Pending returns the deliveries waiting for their 2xx.
func (o *Outbox) Pending() int { return int(o.pending.Load()) }
