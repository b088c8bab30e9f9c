package admin

import (
	"context"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter/webhook"
)

// Webhooks is the node's webhook outbox, as the admin API uses it: the
// endpoints an operator manages, and the signups it emits.
type Webhooks interface {
	// Emit writes the event durably before it returns; an id emitted
	// before is not emitted again.
	Emit(ev webhook.Event, now time.Time) (bool, error)
	Add(ep webhook.Endpoint) error
	Endpoints() ([]webhook.Status, error)
	// Remove removes the endpoint and drops its pending deliveries.
	Remove(id string) (dropped int, err error)
}

// webhooks serves /v1/webhooks and /v1/webhooks/{id}. Every bad input is a
// 400 that names the field, and changes nothing.
func (a *API) webhooks(_ context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if a.o.Webhooks == nil {
		return 0, nil, errorf(fasthttp.StatusNotFound, "webhooks are not configured on this node")
	}
	method := string(rc.Method())
	if id == "" {
		switch method {
		case "POST":
			return a.addWebhook(rc)
		case "GET":
			list, err := a.o.Webhooks.Endpoints()
			if err != nil {
				return 0, nil, err
			}
			if list == nil {
				list = []webhook.Status{}
			}
			return fasthttp.StatusOK, map[string]any{"webhooks": list}, nil
		}
		return 0, nil, methodNotAllowed(rc, "GET, POST")
	}
	switch method {
	case "GET":
		list, err := a.o.Webhooks.Endpoints()
		if err != nil {
			return 0, nil, err
		}
		for _, s := range list {
			if s.ID == id {
				return fasthttp.StatusOK, s, nil
			}
		}
		return 0, nil, errorf(fasthttp.StatusNotFound, "webhook endpoint %q not found", id)
	case "DELETE":
		dropped, err := a.o.Webhooks.Remove(id)
		if errors.Is(err, webhook.ErrNotFound) {
			return 0, nil, errorf(fasthttp.StatusNotFound, "webhook endpoint %q not found", id)
		} else if err != nil {
			return 0, nil, err
		}
		return fasthttp.StatusOK, map[string]any{"id": id, "removed": true, "dropped_deliveries": dropped}, nil
	}
	return 0, nil, methodNotAllowed(rc, "GET, DELETE")
}

// addWebhook adds an endpoint and answers it with its secret, the only
// time the secret is shown.
func (a *API) addWebhook(rc *fasthttp.RequestCtx) (int, any, error) {
	var spec webhook.Spec
	if err := decode(rc, &spec); err != nil {
		return 0, nil, err
	}
	ep, err := spec.Endpoint(a.o.Now())
	if errors.Is(err, webhook.ErrInvalid) {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "%s", err)
	} else if err != nil {
		return 0, nil, err
	}
	if err := a.o.Webhooks.Add(ep); err != nil {
		return 0, nil, err
	}
	return fasthttp.StatusCreated, ep, nil
}

// emitSignup emits the signup.attributed event of an attribution, new or
// a duplicate: a conversion sent again after an error emits the event
// that was not, and one that was is not emitted twice (its id names the
// campaign and the user).
func (a *API) emitSignup(campaign, creator, user string, at time.Time) error {
	if a.o.Webhooks == nil {
		return nil
	}
	ev := webhook.SignupEvent(webhook.Signup{Campaign: campaign, Creator: creator, UserID: user, OccurredAt: at})
	if _, err := a.o.Webhooks.Emit(ev, a.o.Now()); err != nil {
		a.o.Logger.Error("cannot emit a webhook event", "event", ev.ID, "type", ev.Type, "err", err)
		return errorf(fasthttp.StatusServiceUnavailable, "the signup is recorded, but its %s webhook event could not be queued; send the same conversion again", ev.Type)
	}
	return nil
}
