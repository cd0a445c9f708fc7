package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// backendCPU is a sample of the cluster's backends: pid to its role (the
// application_name the client set, or the backend type: "walwriter",
// "autovacuum worker", …) and CPU seconds so far.
type backendCPU map[int]backendSample

type backendSample struct {
	role string
	cpu  float64
}

// sampleBackends reads every backend of the cluster from pg_stat_activity
// and its CPU from /proc. A backend that exits between the query and the
// read is left out.
func (b *bench) sampleBackends(ctx context.Context) backendCPU {
	rows, err := b.pool.Query(ctx, `
SELECT pid, coalesce(nullif(application_name, ''), backend_type, 'unknown')
FROM pg_stat_activity`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := backendCPU{}
	for rows.Next() {
		var pid int
		var role string
		if rows.Scan(&pid, &role) != nil {
			continue
		}
		if cpu, err := procCPU(pid, false); err == nil {
			out[pid] = backendSample{role: role, cpu: cpu}
		}
	}
	return out
}

// cpuByRole is the CPU seconds each role spent between two samples, over
// the backends alive in both (a backend that came or went in between is
// counted in the cluster's total but not here).
func cpuByRole(a, z backendCPU) map[string]float64 {
	var out map[string]float64
	for pid, s := range z {
		if p, ok := a[pid]; ok && p.role == s.role && s.cpu > p.cpu {
			if out == nil {
				out = map[string]float64{}
			}
			out[s.role] += s.cpu - p.cpu
		}
	}
	return out
}

// formatByRole renders µs per delivery by role, most first:
// "streamer-sequencer 96.5, streamer-bench 88.0, …".
func formatByRole(us map[string]float64) string {
	roles := make([]string, 0, len(us))
	for r := range us {
		roles = append(roles, r)
	}
	sort.Slice(roles, func(i, j int) bool { return us[roles[i]] > us[roles[j]] })
	parts := make([]string, len(roles))
	for i, r := range roles {
		parts[i] = fmt.Sprintf("%s %.1f", r, us[r])
	}
	return strings.Join(parts, ", ")
}
