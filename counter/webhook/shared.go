package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Claimer decides which node delivers an event to an endpoint when
// several nodes emit it: the one whose outbox claims it for the endpoint
// first. The claim is made at the delivery, not at the emission, so an
// event stays durable in the outbox whether or not the Claimer can be
// reached, and an outbox that emitted it and died before claiming it
// leaves it to the others.
type Claimer interface {
	// ClaimDelivery reports whether holder (an Outbox.Node) is to deliver
	// event to endpoint: true when holder claimed the event for the
	// endpoint now or before, false when another holder did or the
	// endpoint is removed.
	ClaimDelivery(ctx context.Context, event, endpoint, holder string) (bool, error)
}

// Registry keeps the endpoints that several nodes share, with the claims
// of their events (redisstore.Store).
type Registry interface {
	Claimer
	// AddWebhook adds ep, with its secret; ErrExists when its id is taken.
	AddWebhook(ctx context.Context, ep Endpoint) error
	// Webhooks returns every endpoint, with its secret.
	Webhooks(ctx context.Context) ([]Endpoint, error)
	// RemoveWebhook removes the endpoint id, or returns ErrNotFound.
	RemoveWebhook(ctx context.Context, id string) error
}

// ErrExists means an endpoint with the id exists.
var ErrExists = errors.New("webhook: endpoint id taken")

// SharedOptions configure a Shared.
type SharedOptions struct {
	// Poll is how often the registry's endpoints are read into the
	// outbox, for those added and removed on other nodes. default: 1s
	Poll time.Duration
	// Timeout bounds one call to the registry. default: 5s
	Timeout time.Duration
	// Logger receives the failures to read the registry, once until it
	// answers again. default: slog.Default()
	Logger *slog.Logger
}

// Shared is an outbox whose endpoints are a registry's: each node emits
// into its own outbox, the deliveries of each event are made by the node
// that claims it first, and every node delivers to every endpoint that
// any node added. The outbox keeps a copy of the registry's endpoints,
// read again every Poll and whenever they are listed, which Emit and the
// deliverer use; the deliverer claims each delivery through Shared
// (ClaimDelivery) before each attempt, so an endpoint removed on any node
// gets nothing more from any node.
type Shared struct {
	o   *Outbox
	reg Registry
	opt SharedOptions

	mu      sync.Mutex  // one sync at a time
	failing bool        // the last sync failed: logged once
	adopted atomic.Bool // the outbox's own endpoints are in the registry

	ctx    context.Context // of every call to the registry; canceled by Stop
	cancel context.CancelFunc
	done   chan struct{}
}

// NewShared returns o sharing reg's endpoints; Start starts following
// them.
func NewShared(o *Outbox, reg Registry, opt SharedOptions) *Shared {
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Shared{o: o, reg: reg, opt: opt, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// Start reads the registry's endpoints once, then every Poll. When the
// registry cannot be read, the outbox keeps the endpoints it has and
// Start tries again at the next Poll.
func (s *Shared) Start() {
	s.sync()
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.opt.Poll)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.sync()
			}
		}
	}()
}

// Stop stops following the registry, cutting short a read under way:
// a shutdown does not wait for a registry that does not answer.
func (s *Shared) Stop() {
	s.cancel()
	<-s.done
}

// ClaimDelivery is the registry's (Claimer), once the outbox's own
// endpoints are in it: until then, an endpoint of the outbox that is not
// in the registry is not one removed, and its deliveries wait.
func (s *Shared) ClaimDelivery(ctx context.Context, event, endpoint, holder string) (bool, error) {
	if !s.adopted.Load() {
		return false, errors.New("the endpoints of this node's outbox are not in the shared ones yet")
	}
	return s.reg.ClaimDelivery(ctx, event, endpoint, holder)
}

// Emit writes ev to the outbox (Outbox.Emit).
func (s *Shared) Emit(ev Event, now time.Time) (bool, error) { return s.o.Emit(ev, now) }

// Add adds ep to the registry, then reads the registry into the outbox.
func (s *Shared) Add(ep Endpoint) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.opt.Timeout)
	defer cancel()
	if err := s.reg.AddWebhook(ctx, ep); err != nil {
		return fmt.Errorf("cannot add webhook endpoint %q: %w", ep.ID, err)
	}
	s.sync() // and when it fails, the next Poll
	return nil
}

// Endpoints reads the registry into the outbox, and returns the outbox's
// endpoints with this node's deliveries: as of the last read when the
// registry cannot be read now.
func (s *Shared) Endpoints() ([]Status, error) {
	s.sync()
	return s.o.Endpoints()
}

// Remove removes the endpoint from the registry, then from the outbox
// with the deliveries it holds for it, and returns how many it dropped.
// Other nodes drop theirs at their next Poll, and make no attempt
// meanwhile (the claim of each fails).
func (s *Shared) Remove(id string) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opt.Timeout)
	defer cancel()
	if err := s.reg.RemoveWebhook(ctx, id); err != nil {
		return 0, err
	}
	n, err := s.o.Remove(id)
	if errors.Is(err, ErrNotFound) {
		return 0, nil // added elsewhere, not read here yet
	}
	return n, err
}

// sync reads the registry into the outbox, and logs a failure once until
// a read succeeds.
func (s *Shared) sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.opt.Timeout)
	defer cancel()
	err := s.syncLocked(ctx)
	if s.ctx.Err() != nil {
		return // stopped
	}
	switch {
	case err != nil && !s.failing:
		s.opt.Logger.Warn("cannot read the shared webhook endpoints; delivering to those read before", "err", err)
	case err == nil && s.failing:
		s.opt.Logger.Info("read the shared webhook endpoints again")
	}
	s.failing = err != nil
}

func (s *Shared) syncLocked(ctx context.Context) error {
	if !s.o.isShared() {
		// The endpoints of an outbox from before the registry go into it
		// once, rather than be dropped as removed by another node.
		own, err := s.o.endpoints()
		if err != nil {
			return err
		}
		for _, ep := range own {
			if err := s.reg.AddWebhook(ctx, ep); err != nil && !errors.Is(err, ErrExists) {
				return fmt.Errorf("cannot add webhook endpoint %q to the shared ones: %w", ep.ID, err)
			}
		}
		if err := s.o.setShared(); err != nil {
			return err
		}
		if len(own) > 0 {
			s.opt.Logger.Info("this node's webhook endpoints are shared with the other nodes from now on", "endpoints", len(own))
		}
	}
	s.adopted.Store(true)
	eps, err := s.reg.Webhooks(ctx)
	if err != nil {
		return err
	}
	return s.o.replace(eps)
}

// endpoints returns the outbox's endpoints, with their secrets.
func (o *Outbox) endpoints() ([]Endpoint, error) {
	var out []Endpoint
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(endpointsBucket).ForEach(func(_, v []byte) error {
			var ep Endpoint
			if err := json.Unmarshal(v, &ep); err != nil {
				return err
			}
			out = append(out, ep)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read the webhook outbox: %w", err)
	}
	return out, nil
}

func (o *Outbox) isShared() bool {
	var ok bool
	o.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(metaBucket).Get(sharedKey) != nil
		return nil
	})
	return ok
}

func (o *Outbox) setShared() error {
	return o.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(sharedKey, []byte{1}) })
}

// replace makes eps the outbox's endpoints: those missing are added, the
// others removed with their pending deliveries. It writes nothing when
// they are the same.
func (o *Outbox) replace(eps []Endpoint) error {
	want := make(map[string][]byte, len(eps))
	for _, ep := range eps {
		b, err := json.Marshal(ep)
		if err != nil {
			return err
		}
		want[ep.ID] = b
	}
	unchanged := true
	var n int
	o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(endpointsBucket).ForEach(func(k, v []byte) error {
			n++
			unchanged = unchanged && bytes.Equal(want[string(k)], v)
			return nil
		})
	})
	if unchanged && n == len(want) {
		return nil
	}
	var gone []string
	var dropped int
	err := o.db.Update(func(tx *bolt.Tx) error {
		gone, dropped = nil, 0
		eb := tx.Bucket(endpointsBucket)
		err := eb.ForEach(func(k, _ []byte) error {
			if want[string(k)] == nil {
				gone = append(gone, string(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range gone {
			n, err := removeEndpoint(tx, id)
			if err != nil {
				return err
			}
			dropped += n
		}
		for id, b := range want {
			if err := eb.Put([]byte(id), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot write the shared webhook endpoints to the outbox: %w", err)
	}
	o.removed(gone, dropped)
	return nil
}
