// Command foreign-client starts Sluice pipelines the way a Go backend would: with
// go.temporal.io/sdk only, minimal JSON input, no Sluice code, no search attributes, no priority
// and no memo at start. It checks that the pipelines complete, answer the progress query, show up
// in the README's visibility queries, run their activities with the tier's priority key and the
// tenant as fairness key, and reject bad input naming the field. It prints one JSON summary on
// stdout and exits 1 when any check fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

type summary struct {
	Video      map[string]any      `json:"video"`
	Report     map[string]any      `json:"report"`
	Progress   map[string]any      `json:"progress"`
	Visibility map[string][]string `json:"visibility"`
	Priorities map[string][]string `json:"priorities"`
	BadInputs  map[string]string   `json:"badInputs"`
	Failures   []string            `json:"failures"`
}

func main() {
	address := flag.String("address", "127.0.0.1:7233", "Temporal frontend host:port")
	namespace := flag.String("namespace", "default", "namespace")
	suffix := flag.String("suffix", "", "SLUICE_TASK_QUEUE_SUFFIX of the workers")
	tenant := flag.String("tenant", "goshop", "tenant")
	source := flag.String("source", "", "video source, relative to SLUICE_MEDIA_ROOT")
	from := flag.String("from", "2024-01", "first report month")
	to := flag.String("to", "2024-02", "last report month")
	flag.Parse()

	queue := func(tier string) string {
		if *suffix == "" {
			return "sluice-" + tier
		}
		return "sluice-" + tier + "-" + *suffix
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The SDK's default logger writes to stdout; stdout carries only the JSON summary.
	logger := log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c, err := client.Dial(client.Options{HostPort: *address, Namespace: *namespace, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(2)
	}
	defer c.Close()

	out := summary{Progress: map[string]any{}, Visibility: map[string][]string{}, Priorities: map[string][]string{}, BadInputs: map[string]string{}}
	fail := func(format string, args ...any) { out.Failures = append(out.Failures, fmt.Sprintf(format, args...)) }

	// 1. A video on the high tier and a report on the default tier, with minimal input.
	videoID := "video:" + *tenant + ":go-video"
	video, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: videoID, TaskQueue: queue("high")},
		"videoPipelineWorkflow", map[string]any{"source": *source, "tenant": *tenant, "idempotencyKey": "go-video", "tier": "high"})
	if err != nil {
		fail("start video: %v", err)
	}
	reportID := "report:" + *tenant + ":go-report"
	report, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: reportID, TaskQueue: queue("default")},
		"reportPipelineWorkflow", map[string]any{"from": *from, "to": *to, "tenant": *tenant, "idempotencyKey": "go-report"})
	if err != nil {
		fail("start report: %v", err)
	}

	if video != nil && report != nil {
		// 2. The results, then the progress query (answered by closed runs too).
		if err := video.Get(ctx, &out.Video); err != nil {
			fail("video result: %v", err)
		}
		if err := report.Get(ctx, &out.Report); err != nil {
			fail("report result: %v", err)
		}
		for name, id := range map[string]string{"video": videoID, "report": reportID} {
			var p map[string]any
			v, err := c.QueryWorkflow(ctx, id, "", "progress")
			if err == nil {
				err = v.Get(&p)
			}
			if err != nil {
				fail("progress query of %s: %v", name, err)
			}
			out.Progress[name] = p
		}

		// 3. The README's visibility queries find both (visibility is eventually consistent).
		queries := map[string]string{
			"video":  fmt.Sprintf(`PipelineKind="video" AND Tenant=%q`, *tenant),
			"report": fmt.Sprintf(`PipelineKind="report" AND Tenant=%q`, *tenant),
			"high":   fmt.Sprintf(`Tier="high" AND Tenant=%q`, *tenant),
		}
		for name, q := range queries {
			out.Visibility[name] = listIDs(ctx, c, q, map[string]string{"video": videoID, "report": reportID, "high": videoID}[name])
		}

		// 4. Priority and fairness of every activity the two runs scheduled, from their histories.
		for name, id := range map[string]string{"video": videoID, "report": reportID} {
			iter := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for iter.HasNext() {
				ev, err := iter.Next()
				if err != nil {
					fail("history of %s: %v", name, err)
					break
				}
				if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
					p := a.GetPriority()
					out.Priorities[name] = append(out.Priorities[name],
						fmt.Sprintf("%s key=%d fairness=%s", a.GetActivityType().GetName(), p.GetPriorityKey(), p.GetFairnessKey()))
				}
			}
		}
	}

	// 5. Bad input, sent straight to the workflows: each failure names its field.
	bad := []struct {
		name, id, queue, workflow string
		input                     map[string]any
	}{
		{"renditions", "video:" + *tenant + ":bad-rendition", queue("default"), "videoPipelineWorkflow",
			map[string]any{"source": *source, "tenant": *tenant, "idempotencyKey": "bad-rendition", "renditions": []string{"999p"}}},
		{"policy", "report:" + *tenant + ":bad-policy", queue("default"), "reportPipelineWorkflow",
			map[string]any{"from": *from, "to": *to, "tenant": *tenant, "idempotencyKey": "bad-policy", "policy": "sometimes"}},
		{"tier", "video:" + *tenant + ":bad-tier", queue("default"), "videoPipelineWorkflow",
			map[string]any{"source": *source, "tenant": *tenant, "idempotencyKey": "bad-tier", "tier": "low"}},
	}
	for _, b := range bad {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: b.id, TaskQueue: b.queue}, b.workflow, b.input)
		if err == nil {
			err = run.Get(ctx, nil)
		}
		var app *temporal.ApplicationError
		switch {
		case err == nil:
			fail("bad %s: the run completed", b.name)
		case !errors.As(err, &app):
			fail("bad %s: not an application error: %v", b.name, err)
		case app.Type() != "InvalidInput" || !app.NonRetryable():
			fail("bad %s: type %s, non-retryable %v", b.name, app.Type(), app.NonRetryable())
		default:
			out.BadInputs[b.name] = app.Error()
		}
	}

	_ = json.NewEncoder(os.Stdout).Encode(out)
	if len(out.Failures) > 0 {
		fmt.Fprintln(os.Stderr, strings.Join(out.Failures, "\n"))
		os.Exit(1)
	}
}

// listIDs runs a visibility query until it finds want (up to 20 s) and returns the IDs it found.
func listIDs(ctx context.Context, c client.Client, query, want string) []string {
	var ids []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		ids = ids[:0]
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err == nil {
			for _, e := range resp.GetExecutions() {
				ids = append(ids, e.GetExecution().GetWorkflowId())
			}
		}
		for _, id := range ids {
			if id == want {
				return ids
			}
		}
		if time.Now().After(deadline) {
			return ids
		}
		time.Sleep(500 * time.Millisecond)
	}
}
