package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// (a) The inspector, driven with the keyboard like a person would, shows
// the events inserted with SQL on the streams it watches, of every type
// without being told the types: ids, types, the stream, multi-line data, and
// the last id in the header.
func testInspectorShowsEvents(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin)
	tb.do(chromedp.Navigate(d.url + "/"))
	require.Equal(t, "streamer inspector", eval[string](tb, `document.title`))
	tb.waitState("idle", shortWait)

	tb.do(
		chromedp.SendKeys(chromedp.ID("streams"), "orders:42"),
		chromedp.SendKeys(chromedp.ID("streams"), kb.Enter), // Enter submits
	)
	tb.waitState("open", shortWait)
	require.Equal(t, "?stream=orders%3A42", eval[string](tb, `location.search`),
		"the subscription is in the URL, so the link can be shared")

	id1 := d.publish(t, "orders:42", "", `{"status":"created"}`)
	d.publish(t, "orders:43", "", "another stream: not shown")
	id2 := d.publish(t, "orders:42", "order.paid", "line 1\nline 2\r\nline 3")
	// A type the page was never told about: EventSource would drop it.
	id3 := d.publish(t, "orders:42", "order.refunded", `{"amount":"12.50"}`)
	id4 := d.publish(t, "orders:42", "", "last")
	tb.waitRows(4, shortWait)

	rows := tb.rows()
	require.Len(t, rows, 4, "%+v", rows)
	want := []struct {
		id        int64
		typ, data string
	}{
		{id1, "message", `{"status":"created"}`},
		{id2, "order.paid", "line 1\nline 2\nline 3"},
		{id3, "order.refunded", `{"amount":"12.50"}`},
		{id4, "message", "last"},
	}
	var ids []string
	for i, w := range want {
		r := rows[i]
		require.True(t, strings.HasSuffix(r.ID, "."+strconv.FormatInt(w.id, 10)),
			"row %d: token %q is not of event %d", i, r.ID, w.id)
		require.Equal(t, w.typ, r.Type, "row %d", i)
		require.Equal(t, w.data, r.Data, "row %d", i)
		require.Equal(t, "orders:42", r.Stream, "row %d: one stream, so its name is known", i)
		ids = append(ids, r.ID)
	}
	requireOrdered(t, ids)
	require.Equal(t, ids[3], eval[string](tb, `document.getElementById("last-id").textContent`))
	require.Equal(t, "4 received", eval[string](tb, `document.getElementById("count").textContent`))

	// Two streams from the last id: the stream of an event is not on the
	// wire, so the page shows "—".
	tb.do(
		chromedp.SetValue(chromedp.ID("streams"), "orders:42, orders:43"),
		chromedp.SetValue(chromedp.ID("from"), ids[3]),
		chromedp.Click(chromedp.ID("subscribe")),
	)
	d.publish(t, "orders:43", "", "from the second stream")
	tb.waitRows(5, shortWait)
	rows = tb.rows()
	require.Len(t, rows, 5, "nothing replayed from before the id: %+v", rows)
	require.Equal(t, "from the second stream", rows[4].Data)
	require.Equal(t, "—", rows[4].Stream)
	tb.requireNoCSPViolations()
}

// (b) The server process is stopped (SIGTERM) and started again on the same
// address while events keep being inserted. The page reconnects with
// Last-Event-ID, and ends with every event exactly once, in commit order,
// after one streamer.shutdown notice.
func testInspectorAcrossRestart(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin)
	tb.do(chromedp.Navigate(d.url + "/?stream=restart")) // a link subscribes at once
	tb.waitState("open", shortWait)

	published, stop := d.keepPublishing(t, "restart", "e", 20*time.Millisecond)
	tb.waitRows(10, shortWait)

	d.stop()
	tb.waitJS(shortWait, "the shutdown notice", `document.querySelectorAll("#events > tr.shutdown").length === 1`)
	tb.waitState("reconnecting", shortWait)
	atStop := published()
	waitFor(t, shortWait, "events published while the server is down", func() bool { return published() >= atStop+10 })

	d.start()
	tb.waitState("open", longWait)
	atStart := published()
	waitFor(t, shortWait, "events published after the restart", func() bool { return published() >= atStart+10 })
	sent := stop()
	tb.waitRows(len(sent), longWait)

	var data, ids []string
	shutdowns := 0
	for _, r := range tb.rows() {
		if r.Server {
			require.Equal(t, "streamer.shutdown", r.Type)
			shutdowns++
			continue
		}
		data = append(data, r.Data)
		ids = append(ids, r.ID)
	}
	require.Equal(t, 1, shutdowns)
	require.Equal(t, sent, data, "every event exactly once, in order")
	requireOrdered(t, ids)

	stats := eval[struct{ Opened, Created, Resumed int }](tb, `inspector.subscription.stats`)
	require.GreaterOrEqual(t, stats.Opened, 2)
	require.Equal(t, stats.Created-1, stats.Resumed, "every reconnect sent Last-Event-ID")
	t.Logf("%d events, %d published while the server was down; %d requests, %d opened",
		len(sent), atStart-atStop, stats.Created, stats.Opened)
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("tr.shutdown").scrollIntoView({block: "center"})`))
	debugShot(tb, "inspector-restart.png")
}

// The publish form posts JSON to /publish and shows the ids; the event then
// arrives in the table. Without anonymous publishing it explains why it
// cannot publish before anyone tries. A server without POST /publish gets a
// disabled form.
func testInspectorPublishForm(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin)
	tb.do(chromedp.Navigate(d.url + "/?stream=form"))
	tb.waitState("open", shortWait)
	tb.waitJS(shortWait, "the publish probe", `document.getElementById("publish-panel").dataset.publish !== "unknown"`)
	panel := func() string { return eval[string](tb, `document.getElementById("publish-panel").dataset.publish`) }
	result := func() string { return eval[string](tb, `document.getElementById("publish-result").textContent`) }

	// What the page should have concluded, asked the same way.
	resp, err := http.Post(d.url+"/publish", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	var body struct{ Error string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		require.Equal(t, "unavailable", panel())
		require.True(t, eval[bool](tb, `document.getElementById("publish-fields").disabled`))
		require.Contains(t, result(), "no POST /publish")
		t.Log("this server has no POST /publish: checked that the form is disabled")
		return
	case http.StatusServiceUnavailable:
		require.Equal(t, "busy", panel())
		require.Contains(t, result(), body.Error)
		t.Logf("POST /publish answers 503 (%s): checked that the page says so", body.Error)
		return
	}
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "an event without a stream: %s", body.Error)

	require.Equal(t, "available", panel())
	require.Equal(t, "form", eval[string](tb, `document.getElementById("pub-stream").value`),
		"the form starts on the subscribed stream")
	tb.do(
		chromedp.SendKeys(chromedp.ID("pub-event"), "note"),
		chromedp.SendKeys(chromedp.ID("pub-data"), "hello from the form"),
		chromedp.Click(chromedp.ID("publish")),
	)
	tb.waitJS(shortWait, "the publish result", `document.getElementById("publish-result").dataset.kind === "ok"`)
	published := result()
	require.Regexp(t, `^Published: id \d+$`, published)
	tb.waitRows(1, shortWait)
	rows := tb.rows()
	require.Equal(t, "hello from the form", rows[0].Data)
	require.Equal(t, "note", rows[0].Type)
	require.True(t, strings.HasSuffix(rows[0].ID, "."+strings.TrimPrefix(published, "Published: id ")))

	// A bad event: the server's 400 is shown.
	tb.do(
		chromedp.SetValue(chromedp.ID("pub-data"), strings.Repeat("x", 1<<20+1)),
		chromedp.Click(chromedp.ID("publish")),
	)
	tb.waitJS(shortWait, "the publish error", `document.getElementById("publish-result").dataset.kind === "error"`)
	require.Regexp(t, `^4\d\d: `, result())

	// Anonymous publishing off: the page says so before anyone tries.
	closed := deploy(t, bin, withEnv("STREAMER_ALLOW_ANONYMOUS_PUBLISH", "false"))
	tb.do(chromedp.Navigate(closed.url + "/"))
	tb.waitJS(shortWait, "the publish probe", `document.getElementById("publish-panel").dataset.publish === "forbidden"`)
	require.Regexp(t, `^401: .+ Or publish with SQL`, result())
}

// The inspector's SSE parser, fed a stream in awkward chunks: CRLF, CR and
// LF line ends (a CRLF split across chunks), a BOM, comments, a field
// without a value, unknown fields, multi-line data, an event with a type
// but no data (nothing dispatched), an id-only frame (moves the last id,
// no event) and an id with NUL (ignored).
func testInspectorSSEParser(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin)
	tb.do(chromedp.Navigate(d.url + "/"))
	tb.waitState("idle", shortWait)
	chunks := []string{
		"\ufeff: streamer\nretry: 3000\n\n",
		"id: 1.1\nevent: order.refunded\ndata: a\r\ndata:b\rdata\r",
		"\n\r\nid: 2.2\n\nevent: lost\n\n: ping\ndat",
		"a: untyped\nfoo: bar\nid: 3\x003\n\n",
	}
	js, err := json.Marshal(chunks)
	require.NoError(t, err)
	type out struct {
		Kind, ID, Type, Data string
	}
	got := eval[[]out](tb, `(() => {
		const out = [];
		const p = new inspector.SSEParser({
			onEvent: (e) => out.push({kind: "event", id: e.id, type: e.type, data: e.data}),
			onId: (id) => out.push({kind: "id", id}),
			onRetry: (ms) => out.push({kind: "retry", data: String(ms)}),
		});
		for (const c of `+string(js)+`) p.feed(c);
		return out;
	})()`)
	require.Equal(t, []out{
		{Kind: "retry", Data: "3000"},
		{Kind: "id", ID: ""},
		{Kind: "id", ID: "1.1"},
		{Kind: "event", ID: "1.1", Type: "order.refunded", Data: "a\nb\n"},
		{Kind: "id", ID: "2.2"},
		{Kind: "id", ID: "2.2"},
		{Kind: "id", ID: "2.2"},
		{Kind: "event", ID: "2.2", Type: "message", Data: "untyped"},
	}, got)
}
