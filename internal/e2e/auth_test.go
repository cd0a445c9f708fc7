package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
)

const e2eSecret = "e2e-secret-0123456789abcdef01234"

// /streamer.js with a token function on a server that requires tokens: the
// first token expires a few seconds after connecting; the server sends
// streamer.reauth and closes the connection; the client asks the function
// for a fresh token and reconnects from its last id, missing nothing and
// repeating nothing. The server's log (at debug level) holds no token.
func testClientReauth(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin, withEnv("STREAMER_JWT_SECRET", e2eSecret), withEnv("STREAMER_LOG_LEVEL", "debug"))
	tb.do(chromedp.Navigate(d.url + "/")) // any page of the origin will do
	tb.do(chromedp.Evaluate[chromedp.Void](`import("/streamer.js").then((m) => { window.streamer = m })`,
		chromedp.EvalAwaitPromise))

	mint := func(ttl time.Duration, now time.Time) string {
		tok, err := auth.Mint([]byte(e2eSecret), auth.MintOptions{Subject: "alice", Subscribe: []string{"user:{sub}"}, TTL: ttl, Now: now})
		require.NoError(t, err)
		return tok
	}
	// exp has whole seconds: 2 to 3 s from now.
	now := time.Now()
	short := mint(3*time.Second-time.Duration(now.Nanosecond()), now)
	fresh := mint(time.Hour, time.Now())
	tokens, err := json.Marshal([]string{short, fresh})
	require.NoError(t, err)

	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`
		window.tokens = %s;
		window.asked = 0;
		window.got = [];
		window.reauths = [];
		window.sub = streamer.subscribe({
			streams: ["user:alice"],
			// A promise, as an application's fetch of a fresh token would give.
			token: () => Promise.resolve(tokens[Math.min(asked++, tokens.length - 1)]),
			onEvent: (ev) => got.push(ev.data),
			onReauth: (ev) => reauths.push(ev.info),
		})`, tokens)))
	tb.waitJS(shortWait, "the subscription", `sub.state === "open"`)
	d.publish(t, "user:alice", "", "before")
	tb.waitJS(shortWait, "the first event", `got.length >= 1`)

	tb.waitJS(longWait, "streamer.reauth", `reauths.length >= 1`)
	d.publish(t, "user:alice", "", "around the reauth")
	tb.waitJS(shortWait, "the reconnect", `sub.state === "open" && sub.stats.created >= 2`)
	d.publish(t, "user:alice", "", "after")
	tb.waitJS(shortWait, "every event", `got.length >= 3`)

	require.Equal(t, []string{"before", "around the reauth", "after"}, eval[[]string](tb, `got`))
	require.Equal(t, []map[string]string{{"reason": "token expired"}}, eval[[]map[string]string](tb, `reauths`))
	require.Equal(t, 2, eval[int](tb, `asked`), "one token per connection")
	require.Equal(t, 2, eval[int](tb, `sub.stats.created`))

	log := d.logs.String()
	require.Contains(t, log, "streamer.reauth")
	// The client reconnected on streamer.reauth with the fresh token; it
	// did not first retry with the expired one.
	require.NotContains(t, log, "refused")
	require.NotContains(t, log, short)
	require.NotContains(t, log, fresh)
}

// The inspector on a server that requires tokens: the token pasted in the
// page goes in the Authorization header, never in a URL. When it expires
// the server sends streamer.reauth, which shows as a row of its own; the
// page keeps trying from the last id, says the token was refused, and once
// a fresh token is pasted it resumes, missing and repeating nothing. The
// server's log (at debug level) holds no token.
func testInspectorReauth(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin, withEnv("STREAMER_JWT_SECRET", e2eSecret), withEnv("STREAMER_LOG_LEVEL", "debug"))
	mint := func(ttl time.Duration, now time.Time) string {
		tok, err := auth.Mint([]byte(e2eSecret), auth.MintOptions{Subject: "alice", Subscribe: []string{"user:{sub}"}, TTL: ttl, Now: now})
		require.NoError(t, err)
		return tok
	}
	now := time.Now()
	short := mint(3*time.Second-time.Duration(now.Nanosecond()), now) // exp: 2 to 3 s from now
	fresh := mint(time.Hour, time.Now())

	tb.do(chromedp.Navigate(d.url + "/"))
	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem("streamer.accessToken", %q)`, short)))
	tb.do(chromedp.Navigate(d.url + "/?stream=user:alice"))
	tb.waitState("open", shortWait)
	d.publish(t, "user:alice", "", "before")
	tb.waitRows(1, shortWait)

	tb.waitJS(longWait, "the streamer.reauth row", `document.querySelectorAll("#events > tr.server.reauth").length === 1`)
	tb.waitJS(shortWait, "the refusal of the expired token",
		`document.getElementById("subscribe-error").textContent.includes("(401)")`)
	require.Equal(t, "reconnecting", eval[string](tb, `document.getElementById("state").dataset.state`))
	d.publish(t, "user:alice", "", "while refused")

	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`{
		const el = document.getElementById("token");
		el.value = %q;
		el.dispatchEvent(new Event("change"));
	}`, fresh)))
	tb.waitState("open", shortWait)
	d.publish(t, "user:alice", "", "after")
	tb.waitRows(3, shortWait)

	var data []string
	for _, r := range tb.rows() {
		if r.Server {
			require.Equal(t, "streamer.reauth", r.Type)
			continue
		}
		data = append(data, r.Data)
	}
	require.Equal(t, []string{"before", "while refused", "after"}, data)
	require.True(t, eval[bool](tb, `document.getElementById("subscribe-error").hidden`), "the refusal is cleared")
	tb.requireNoCSPViolations()

	log := d.logs.String()
	require.Contains(t, log, "streamer.reauth")
	require.NotContains(t, log, short)
	require.NotContains(t, log, fresh)
}
