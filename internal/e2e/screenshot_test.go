package e2e

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// maxScreenshotBytes keeps docs/inspector.png small enough for the README.
const maxScreenshotBytes = 200 << 10

// (d) A screenshot of the inspector with live events, for the README. With
// UPDATE_SCREENSHOT=1 it overwrites docs/inspector.png; otherwise it goes to a
// temporary directory (or STREAMER_SCREENSHOT_DIR) and is only checked, so
// that running the tests never changes the tree. A phone-sized view is
// checked too: nothing may overflow sideways.
func testScreenshot(t *testing.T, bin string, tb *tab) {
	d := deploy(t, bin)
	dir := os.Getenv("STREAMER_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "inspector.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		path = filepath.Join("..", "..", "docs", "inspector.png")
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	}

	// No arrival animation half-way through in the picture.
	_, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}},
	})
	require.NoError(t, err)
	tb.do(
		chromedp.EmulateViewport(1200, 880),
		chromedp.Navigate(d.url+"/?stream=orders:42"),
	)
	tb.waitState("open", shortWait)

	for _, ev := range [][2]string{
		{"order.created", `{"order":42,"customer":"c_1807","items":3,"total":"59.90"}`},
		{"", `{"status":"awaiting_payment"}`},
		{"order.paid", `{"order":42,"amount":"59.90","method":"card"}`},
		{"order.packed", `{"order":42,"parcels":1,"weight_kg":1.4}`},
		{"order.shipped", "carrier: DHL\ntracking: JD014600003828\neta: 2026-11-24"},
	} {
		d.publish(t, "orders:42", ev[0], ev[1])
	}
	n := 5
	tb.waitRows(n, shortWait)

	tb.waitJS(shortWait, "the publish probe", `document.getElementById("publish-panel").dataset.publish !== "unknown"`)
	if eval[string](tb, `document.getElementById("publish-panel").dataset.publish`) == "available" {
		tb.do(
			chromedp.SendKeys(chromedp.ID("pub-event"), "order.note"),
			chromedp.SendKeys(chromedp.ID("pub-data"), `{"note":"gift wrap, please"}`),
			chromedp.Click(chromedp.ID("publish")),
		)
		n++
		tb.waitRows(n, shortWait)
	}
	tb.requireNoCSPViolations()
	tb.do(chromedp.Evaluate[chromedp.Void](`document.activeElement?.blur(); scrollTo(0, 0)`))

	shot, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	requirePNG(t, shot, 1200)
	require.Less(t, len(shot), maxScreenshotBytes, "screenshot too large for the README")
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	t.Logf("wrote %s (%d KiB)", path, len(shot)>>10)

	// A phone: one column, nothing wider than the screen.
	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	tb.waitJS(shortWait, "the phone layout", `innerWidth === 390`)
	require.LessOrEqual(t, eval[int](tb, `document.documentElement.scrollWidth`), 390,
		"the page overflows a phone screen sideways")
	phone, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	requirePNG(t, phone, 780)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "inspector-phone.png"), phone, 0o644))
}

// requirePNG requires b to be a PNG image width pixels wide.
func requirePNG(t *testing.T, b []byte, width int) {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	require.NoError(t, err, "not a PNG")
	require.Equal(t, width, cfg.Width)
	_, err = png.Decode(bytes.NewReader(b))
	require.NoError(t, err, "PNG does not decode")
}

// debugShot saves a screenshot of the tab as name in STREAMER_SCREENSHOT_DIR,
// when that is set, for a person to look at.
func debugShot(tb *tab, name string) {
	tb.t.Helper()
	dir := os.Getenv("STREAMER_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	shot, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	require.NoError(tb.t, err)
	require.NoError(tb.t, os.WriteFile(filepath.Join(dir, name), shot, 0o644))
}
