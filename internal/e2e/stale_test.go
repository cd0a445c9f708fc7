package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// stalePage is what an application server renders: a page that embeds a
// streamer.head() token taken while rendering and subscribes with it through
// /streamer.js. %s is the token as a JSON string.
const stalePage = `<!doctype html>
<meta charset="utf-8">
<title>orders</title>
<script type="module">
import { subscribe } from "/streamer.js";
window.got = [];
window.states = [];
window.sub = subscribe({
  streams: ["stale", "stale-b"],
  types: ["t"],
  lastEventId: %s,
  onEvent: (ev) => got.push({id: ev.id, type: ev.type, data: ev.data, stream: ev.stream}),
  onState: (state) => states.push(state),
});
</script>`

// (c) The page-born-stale case through /streamer.js: an application renders
// a page with a streamer.head() token; events commit between the render and
// the page's connection. The page receives exactly the events committed
// after head(), on both of its streams, then live ones.
//
// The application is an httptest server that renders the page and proxies
// everything else to streamer, so the page, /streamer.js and /events share
// one origin, as behind a real reverse proxy.
func testStaleToken(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin)
	d.publish(t, "stale", "", "before-0")
	d.publish(t, "stale-b", "", "before-1")
	token := d.head(t)
	require.Regexp(t, `^\d+$`, token)
	d.publish(t, "stale", "", "after-0")
	d.publish(t, "stale-b", "t", "after-1")
	d.publish(t, "stale", "", "after-2")

	target, err := url.Parse(d.url)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	transport := &http.Transport{}
	proxy.Transport = transport
	tokenJSON, err := json.Marshal(token)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, stalePage, tokenJSON)
	})
	app := httptest.NewServer(mux)
	t.Cleanup(func() {
		app.CloseClientConnections() // the page's stream would hold Close up
		app.Close()
		transport.CloseIdleConnections()
	})

	tb.do(chromedp.Navigate(app.URL + "/orders"))
	tb.waitJS(shortWait, "the events after the token", `window.got?.length >= 3`)
	tb.waitJS(shortWait, "an open connection", `sub.state === "open"`)
	d.publish(t, "stale-b", "t", "live-0")
	tb.waitJS(shortWait, "the live event", `got.length >= 4`)

	type event struct {
		ID, Type, Data string
		Stream         *string
	}
	got := eval[[]event](tb, `got`)
	var data, ids []string
	for _, ev := range got {
		data = append(data, ev.Data)
		ids = append(ids, ev.ID)
		require.Nil(t, ev.Stream, "two streams: the stream is not known")
	}
	require.Equal(t, []string{"after-0", "after-1", "after-2", "live-0"}, data)
	require.Equal(t, []string{"message", "t", "message", "t"},
		[]string{got[0].Type, got[1].Type, got[2].Type, got[3].Type})
	requireOrdered(t, append([]string{token}, ids...))
	require.Equal(t, ids[3], eval[string](tb, `sub.lastEventId`))
	require.Equal(t, []string{"connecting", "open"}, eval[[]string](tb, `states`))
}
