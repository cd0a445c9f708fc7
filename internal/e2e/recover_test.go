package e2e

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// /streamer.js where EventSource gives up: a non-200 answer makes the
// browser close the EventSource for good. The client then asks with fetch
// why; a 400 is final and reported with the server's message, a 503 (here:
// the connection limit) is retried with a new EventSource from the last id,
// which misses nothing.
func testClientRecovers(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin, withEnv("STREAMER_MAX_CONNECTIONS", "1"))
	tb.do(chromedp.Navigate(d.url + "/")) // any page of the origin will do
	tb.do(chromedp.Evaluate[chromedp.Void](`import("/streamer.js").then((m) => { window.streamer = m })`,
		chromedp.EvalAwaitPromise))

	// A refusal that retrying cannot fix.
	tb.do(chromedp.Evaluate[chromedp.Void](`
		window.refused = streamer.subscribe({
			streams: ["no spaces allowed"],
			onError: (err) => { window.refusal = err },
		})`))
	tb.waitJS(shortWait, "the refusal", `window.refusal !== undefined`)
	refusal := eval[struct {
		Status  int
		Message string
	}](tb, `refusal`)
	require.Equal(t, 400, refusal.Status)
	require.Contains(t, refusal.Message, "invalid stream name")
	require.Equal(t, "closed", eval[string](tb, `refused.state`))

	// The only connection slot is taken: the second subscription gets 503s
	// until the first one closes.
	tb.do(chromedp.Evaluate[chromedp.Void](`window.first = streamer.subscribe({streams: ["slot"]})`))
	tb.waitJS(shortWait, "the first subscription", `first.state === "open"`)
	token := d.head(t)
	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`
		window.got = [];
		window.states = [];
		window.second = streamer.subscribe({
			streams: ["slot"],
			lastEventId: %q,
			onEvent: (ev) => got.push(ev.data),
			onState: (s) => states.push(s),
		})`, token)))
	tb.waitJS(shortWait, "the browser giving up", `second.stats.created >= 2 || states.includes("reconnecting")`)
	d.publish(t, "slot", "", "published while refused")
	tb.do(chromedp.Evaluate[chromedp.Void](`first.close()`))
	tb.waitJS(longWait, "the second subscription", `second.state === "open" && got.length >= 1`)
	d.publish(t, "slot", "", "live")
	tb.waitJS(shortWait, "the live event", `got.length >= 2`)

	require.Equal(t, []string{"published while refused", "live"}, eval[[]string](tb, `got`))
	require.GreaterOrEqual(t, eval[int](tb, `second.stats.created`), 2, "a new EventSource after the browser gave up")
	require.Equal(t, []string{"connecting", "reconnecting", "open"}, eval[[]string](tb, `states`))
}
