package localapi

import (
	"embed"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// web holds the dashboard: one page, its script and its stylesheet. The page
// is public static content; every piece of data it shows comes from the admin
// API with the admin token.
//
//go:embed web/index.html web/app.js web/style.css web/favicon.svg
var web embed.FS

const dashboardPrefix = "/admin/"

// dashboardCSP forbids inline script, eval and any other origin (the page
// works offline, no CDN) and framing.
const dashboardCSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// handleDashboard serves /admin/ (index.html) and the files it loads
// (app.js, style.css, favicon.svg); /admin redirects to /admin/.
func (s *Server) handleDashboard(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	if p == "/admin" {
		ctx.Redirect("/admin/", fasthttp.StatusMovedPermanently)
		return
	}
	name := strings.TrimPrefix(p, dashboardPrefix)
	if name == "" {
		name = "index.html"
	}
	if strings.Contains(name, "/") {
		s.dashboardNotFound(ctx)
		return
	}
	b, err := web.ReadFile("web/" + name)
	if err != nil {
		s.dashboardNotFound(ctx)
		return
	}
	if !s.allow(ctx, "GET") {
		return
	}
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer") // the token is in the URL of the first load
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	ctx.SetContentType(mime.TypeByExtension(path.Ext(name)))
	ctx.SetBody(b)
}

func (s *Server) dashboardNotFound(ctx *fasthttp.RequestCtx) {
	writeError(ctx, fasthttp.StatusNotFound, "not_found", "", "no such dashboard file: "+string(ctx.Path()))
}
