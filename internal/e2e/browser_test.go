package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testenv"
)

// tabTimeout bounds everything one test does in its tab.
const tabTimeout = 60 * time.Second

// chromiumPath returns the browser to drive: STREAMER_CHROMIUM, else
// Debian's /usr/bin/chromium, else chromium on PATH.
func chromiumPath() (string, error) {
	return toolPath("STREAMER_CHROMIUM", "/usr/bin/chromium", "chromium")
}

// toolPath finds a program the tests drive: the one named by the
// environment variable env, else Debian's at debian, else name on PATH.
func toolPath(env, debian, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return exec.LookPath(p)
	}
	if fileExists(debian) {
		return debian, nil
	}
	return exec.LookPath(name)
}

// newBrowser starts headless Chromium for t and its subtests, and closes it
// at t's cleanup. Without Chromium it skips t, or fails it under CI=true.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		testenv.Unavailable(t, "no Chromium to test with (install Debian's chromium, e.g. make deps, or set STREAMER_CHROMIUM): %v", err)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()), // a fresh profile
		// Chromium keeps its singleton socket in a directory of its own
		// under TMPDIR and leaves it behind: in the test's, not in /tmp.
		chromedp.Env("TMPDIR="+t.TempDir()),
		chromedp.NoSandbox, // as root in a container
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	began := time.Now()
	// The first action starts the browser; its tab stays open, unused.
	require.NoError(t, chromedp.Do(browserCtx), "starting %s", path)
	t.Logf("started %s in %v", path, time.Since(began).Round(time.Millisecond))
	return browserCtx
}

// tab is one browser tab of a test, with the page's console collected for
// the failure report.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// newTab opens a tab in browser, closed at t's cleanup.
func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	ctx, cancelTimeout := context.WithTimeout(ctx, tabTimeout)
	tb := &tab{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		if t.Failed() {
			tb.mu.Lock()
			t.Logf("browser console:\n%s", strings.Join(tb.console, "\n"))
			tb.mu.Unlock()
		}
	})
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			line = fmt.Sprintf("exception: %s %s:%d", d.Text, d.URL, d.LineNumber)
			if d.Exception != nil {
				line += " " + d.Exception.Description
			}
		default:
			return
		}
		tb.mu.Lock()
		tb.console = append(tb.console, line)
		tb.mu.Unlock()
	}))
	// Record what the page's Content-Security-Policy blocks: such a block
	// breaks the page silently.
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.cspViolations = [];
			document.addEventListener("securitypolicyviolation",
				(e) => cspViolations.push(e.violatedDirective + " " + e.blockedURI));`,
	})
	require.NoError(t, err)
	return tb
}

// requireNoCSPViolations requires that the page's Content-Security-Policy
// blocked nothing.
func (tb *tab) requireNoCSPViolations() {
	tb.t.Helper()
	require.Empty(tb.t, eval[[]string](tb, `cspViolations`), "blocked by the Content-Security-Policy")
}

// do runs actions in the tab and requires them to succeed.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	require.NoError(tb.t, chromedp.Do(tb.ctx, actions...))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	require.NoError(tb.t, err, "evaluating %s", expr)
	return v
}

// waitJS polls a JavaScript condition in the page every 20 ms until it is
// truthy, for at most timeout.
func (tb *tab) waitJS(timeout time.Duration, what, cond string) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	require.NoError(tb.t, err, "waiting for %s (%s)", what, cond)
}

// row is an event as the inspector page shows it.
type row struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Stream string `json:"stream"`
	Data   string `json:"data"`
	Server bool   `json:"server"`
}

// jsRows lists the inspector's table rows in arrival order (the page shows
// the newest first).
const jsRows = `[...document.querySelectorAll("#events > tr")].reverse().map(tr => ({
	id: tr.dataset.id ?? "",
	type: tr.dataset.type ?? "",
	stream: tr.querySelector(".c-stream").textContent,
	data: tr.querySelector(".c-data").textContent,
	server: tr.classList.contains("server"),
}))`

// rows returns the inspector's event rows in arrival order.
func (tb *tab) rows() []row {
	tb.t.Helper()
	return eval[[]row](tb, jsRows)
}

// waitRows waits until the inspector shows at least n application events.
func (tb *tab) waitRows(n int, timeout time.Duration) {
	tb.t.Helper()
	tb.waitJS(timeout, fmt.Sprintf("%d events on the page", n),
		fmt.Sprintf(`document.querySelectorAll("#events > tr.event").length >= %d`, n))
}

// waitState waits until the inspector's connection state is state.
func (tb *tab) waitState(state string, timeout time.Duration) {
	tb.t.Helper()
	tb.waitJS(timeout, "connection state "+state,
		fmt.Sprintf(`document.getElementById("state").dataset.state === %q`, state))
}
