package jobs

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// Webhooks delivers prediction webhooks, signed with each owner's secret;
// *webhook.Service is the one the gateway runs. Send never waits on the
// receiver.
type Webhooks interface {
	Send(ctx context.Context, ev webhook.Event) error
}

// checkWebhook validates a webhook URL and events filter at submit, as
// 422s naming the field: an http(s) URL, and unless the config allows
// private addresses, a host that resolves only to public ones (the
// delivery's dialer checks the address it connects to again). An empty
// filter means every event.
func (s *Service) checkWebhook(ctx context.Context, raw string, events []string) ([]string, error) {
	if s.opts.Webhooks == nil {
		return nil, tollgate.Errorf(tollgate.EInputInvalid, "webhook: this gateway delivers no webhooks")
	}
	if err := webhook.CheckURL(ctx, raw, s.cfg.WebhookAllowPrivate); err != nil {
		return nil, tollgate.Errorf(tollgate.EInputInvalid, "%s", tollgate.ErrorMessage(err))
	}
	if err := webhook.ValidateFilter(events); err != nil {
		return nil, tollgate.Errorf(tollgate.EInputInvalid, "%s", tollgate.ErrorMessage(err))
	}
	if len(events) == 0 {
		return tollgate.WebhookEvents(), nil
	}
	return slices.Clone(events), nil
}

// notify hands a job's event, with the prediction as its body, to the
// webhook service; it is called after the job's change is stored.
func (s *Service) notify(j *tollgate.Job, event string) {
	if j.Webhook == "" || s.opts.Webhooks == nil {
		return
	}
	body, err := json.Marshal(s.render(j))
	if err != nil {
		s.log.Error("jobs: encode webhook body", "job", j.ID, "err", err)
		return
	}
	ev := webhook.Event{PredictionID: j.ID, TenantID: j.Owner.TenantID, UserID: j.Owner.UserID,
		Type: event, URL: j.Webhook, Filter: j.WebhookEvents, Body: body}
	if err := s.opts.Webhooks.Send(context.Background(), ev); err != nil {
		s.log.Warn("jobs: webhook not queued", "job", j.ID, "event", event, "err", err)
	}
}
