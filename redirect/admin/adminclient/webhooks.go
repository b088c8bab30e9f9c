package adminclient

import (
	"context"
	"net/url"

	"github.com/clickgate/clickgate/counter/webhook"
)

// RemovedWebhook is the answer of DELETE /v1/webhooks/{id}.
type RemovedWebhook struct {
	ID                string `json:"id"`
	Removed           bool   `json:"removed"`
	DroppedDeliveries int    `json:"dropped_deliveries"`
}

// AddWebhook adds an endpoint to the node's outbox; its secret is in the
// answer, and only there.
func (c *Client) AddWebhook(ctx context.Context, s webhook.Spec) (webhook.Endpoint, error) {
	var out webhook.Endpoint
	return out, c.call(ctx, "POST", "/v1/webhooks", s, &out)
}

// Webhooks returns the node's endpoints with their deliveries.
func (c *Client) Webhooks(ctx context.Context) ([]webhook.Status, error) {
	var out struct {
		Webhooks []webhook.Status `json:"webhooks"`
	}
	return out.Webhooks, c.call(ctx, "GET", "/v1/webhooks", nil, &out)
}

// Webhook returns endpoint id; unknown is ErrNotFound.
func (c *Client) Webhook(ctx context.Context, id string) (webhook.Status, error) {
	var out webhook.Status
	return out, c.call(ctx, "GET", "/v1/webhooks/"+url.PathEscape(id), nil, &out)
}

// RemoveWebhook removes endpoint id and drops its pending deliveries.
func (c *Client) RemoveWebhook(ctx context.Context, id string) (RemovedWebhook, error) {
	var out RemovedWebhook
	return out, c.call(ctx, "DELETE", "/v1/webhooks/"+url.PathEscape(id), nil, &out)
}
