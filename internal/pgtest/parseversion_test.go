package pgtest

import "github.com/streamer-dev/streamer/internal/pgcluster"

// parseVersion moved to pgcluster with the throwaway cluster; this name
// keeps TestParseVersion where it was.
var parseVersion = pgcluster.ParseVersion
