package main

// dbCPUPerDeliveryUs is the PostgreSQL CPU per delivery to report for r:
// the cluster's CPU during the window (see clusterCPU) over its deliveries,
// for a target that uses the database; 0 (shown "–") for the references,
// which use none: the cluster only idles, or vacuums after the previous
// scenario, in their windows.
func (r *result) dbCPUPerDeliveryUs() float64 {
	if r.Target == "baseline" || r.Target == "floor" {
		return 0
	}
	return r.PGCPUPerDeliveryUs
}
