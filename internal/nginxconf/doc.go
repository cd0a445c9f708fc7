// Package nginxconf generates the configuration that runs docs/nginx.conf
// (the site the project ships) in a throwaway nginx: the site with its
// addresses replaced, and a main configuration with Debian's http defaults
// that keeps everything nginx writes in one directory. The end-to-end
// tests and the load tool's nginx scenario both run nginx this way.
//
// # Invariants
//
//   - [Site] replaces each text that stands in the site exactly once, and
//     fails, changing nothing, when one stands there not once.
//   - [Main.String] names no path outside Main.Dir: pid, logs, temporary
//     files and the included site ([SiteFile]) are all inside it.
//   - [Main.Command] writes both files and returns nginx's command
//     unstarted; nginx runs in the foreground (daemon off), so that the
//     process the caller starts is nginx's master.
package nginxconf
