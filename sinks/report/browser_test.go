package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/pipeline/demo"
	"github.com/lapse-dev/lapse/sinks/report"
)

// findChromium is the headless browser the end-to-end test drives:
// LAPSE_CHROMIUM, else chromium (Debian's package) or Chrome on the PATH.
// Without one the test skips, loudly, unless CI=true or
// LAPSE_REQUIRE_CHROMIUM=1, where it fails.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LAPSE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "NO CHROMIUM: the browser test of the HTML report did not run. Install Debian's chromium package " +
		"(apt-get install -y chromium; .ci/run does) or set LAPSE_CHROMIUM=/path/to/chrome"
	if os.Getenv("CI") == "true" || os.Getenv("LAPSE_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg + " (required here: CI=true or LAPSE_REQUIRE_CHROMIUM=1)")
	}
	t.Skip("SKIPPED LOUDLY: " + msg)
	return ""
}

// chromium runs the browser headless on a local file, offline: no
// background networking, no first-run or component fetches.
func chromium(t *testing.T, bin, userDir string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + userDir, "--window-size=1280,900", "--enable-logging=stderr", "--v=0"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, e.String())
	}
	return o.Bytes(), e.Bytes()
}

// probeScript records, into the DOM, every error the page raises (script
// errors, failed loads, refused requests, console.error) and its width
// against the window's, for --dump-dom to read.
const probeScript = `<script>(function(){
var errs=[];function rec(k,m){errs.push(k+': '+m);}
window.addEventListener('error',function(e){rec('error',e.message||(e.target&&(e.target.src||e.target.href))||'a resource failed');},true);
window.addEventListener('unhandledrejection',function(e){rec('rejection',String(e.reason));});
document.addEventListener('securitypolicyviolation',function(e){rec('refused request',e.blockedURI+' ('+e.violatedDirective+')');});
var ce=console.error;console.error=function(){rec('console.error',Array.prototype.join.call(arguments,' '));return ce.apply(console,arguments);};
var cw=console.warn;console.warn=function(){rec('console.warn',Array.prototype.join.call(arguments,' '));return cw.apply(console,arguments);};
window.addEventListener('load',function(){var p=document.createElement('pre');p.id='lapse-probe';
p.textContent=JSON.stringify({errors:errs,scrollWidth:document.documentElement.scrollWidth,innerWidth:window.innerWidth,
charts:document.querySelectorAll('svg.chart').length,title:document.title});document.body.appendChild(p);});
})();</script>`

type probe struct {
	Errors      []string `json:"errors"`
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
	Charts      int      `json:"charts"`
	Title       string   `json:"title"`
}

// Every page of a report over a multi-night demo opens in headless
// Chromium at 1280×900 without a console error or a refused request, fits
// the window's width (no horizontal scrolling), and its screenshot is not
// blank. LAPSE_SCREENSHOT_DIR keeps the screenshots.
func TestReportPagesInChromium(t *testing.T) {
	bin := findChromium(t)
	dir := demoData(t)
	db, err := notebooks.OpenReadOnly(filepath.Join(dir, demo.PolicyPyPI, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := t.TempDir()
	res, err := report.Build(context.Background(), db, report.Options{Dir: out, ChangesetRoot: filepath.Join(dir, demo.PolicyPyPI, "changesets")})
	if err != nil || res.Err() != nil {
		t.Fatalf("build: %v %v", err, res.Err())
	}
	shots := os.Getenv("LAPSE_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o750); err != nil {
		t.Fatal(err)
	}
	probes := t.TempDir()
	userDir := t.TempDir()
	csp := regexp.MustCompile(`default-src 'none';`)
	console := regexp.MustCompile(`(?m)^.*:CONSOLE[:(].*$`)
	for _, page := range res.Files {
		name := strings.TrimSuffix(filepath.Base(page), ".html")
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		// 1. The page itself: a screenshot, and Chromium's own log of
		// console messages (a refused request is one).
		png := filepath.Join(shots, name+".png")
		_, stderr := chromium(t, bin, userDir, "--screenshot="+png, "--hide-scrollbars", "file://"+page)
		if m := console.FindAll(stderr, -1); len(m) > 0 {
			t.Errorf("%s: the browser console logged:\n%s", name, bytes.Join(m, []byte("\n")))
		}
		checkScreenshot(t, name, png)

		// 2. A copy with the probe script (its CSP letting that one inline
		// script run): every error lands in the DOM, read with --dump-dom.
		withProbe := strings.Replace(csp.ReplaceAllString(string(b), "default-src 'none'; script-src 'unsafe-inline';"), "<head>", "<head>"+probeScript, 1)
		pp := filepath.Join(probes, filepath.Base(page))
		if err := os.WriteFile(pp, []byte(withProbe), 0o640); err != nil {
			t.Fatal(err)
		}
		dom, _ := chromium(t, bin, userDir, "--dump-dom", "--virtual-time-budget=2000", "file://"+pp)
		m := regexp.MustCompile(`<pre id="lapse-probe">(.*?)</pre>`).FindSubmatch(dom)
		if m == nil {
			t.Errorf("%s: the probe did not report (did the page load?):\n%.2000s", name, dom)
			continue
		}
		var p probe
		if err := json.Unmarshal([]byte(unescapeHTML(string(m[1]))), &p); err != nil {
			t.Fatalf("%s: probe %q: %v", name, m[1], err)
		}
		if len(p.Errors) > 0 {
			t.Errorf("%s: errors in the page: %q", name, p.Errors)
		}
		if p.InnerWidth != 1280 || p.ScrollWidth > p.InnerWidth {
			t.Errorf("%s: %d pixels wide in a %d-pixel window: it scrolls sideways", name, p.ScrollWidth, p.InnerWidth)
		}
		if want := strings.Count(string(b), `<svg class="chart"`); p.Charts != want || name == "01_overview" && want == 0 {
			t.Errorf("%s: %d charts in the browser's DOM, %d in the file", name, p.Charts, want)
		}
		if !strings.Contains(p.Title, "lapse") {
			t.Errorf("%s: title %q", name, p.Title)
		}
	}
}

func unescapeHTML(s string) string {
	return strings.NewReplacer("&quot;", `"`, "&lt;", "<", "&gt;", ">", "&#39;", "'", "&amp;", "&").Replace(s)
}

// checkScreenshot fails a blank screenshot: one colour, or nearly nothing
// but the background.
func checkScreenshot(t *testing.T, name, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%s: no screenshot: %v", name, err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: screenshot: %v", name, err)
	}
	bounds := img.Bounds()
	if bounds.Dx() != 1280 {
		t.Errorf("%s: screenshot %v, want 1280 pixels wide", name, bounds)
	}
	counts := map[[3]uint32]int{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			counts[[3]uint32{r >> 8, g >> 8, b >> 8}]++
		}
	}
	top := 0
	for _, n := range counts {
		top = max(top, n)
	}
	total := bounds.Dx() * bounds.Dy()
	if other := total - top; len(counts) < 16 || other < total/20 {
		t.Errorf("%s: the screenshot looks blank: %d colours, %d of %d pixels off the background", name, len(counts), other, total)
	}
}
