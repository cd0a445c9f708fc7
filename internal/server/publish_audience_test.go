package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/batch"
)

// TestPublishAudience: POST /publish stores an event's audience as given,
// absent or null as NULL, and refuses a bad one with 400 naming the event's
// index and the field, storing nothing.
func TestPublishAudience(t *testing.T) {
	t.Parallel()
	ps := publishSetup(t, batch.Config{}, anonymous)
	audienceOf := func(t *testing.T, id int64) []string {
		t.Helper()
		var aud []string
		require.NoError(t, ps.pool.QueryRow(context.Background(),
			"SELECT audience FROM streamer.events WHERE id = $1", id).Scan(&aud))
		return aud
	}

	t.Run("RoundTrip", func(t *testing.T) {
		r := ps.post(t, `[
			{"stream":"s","data":"1","audience":["user:1","team:7"]},
			{"stream":"s","data":"2"},
			{"stream":"s","data":"3","audience":null},
			{"stream":"s","data":"4","audience":["a \"quoted\", {braced} \\ value","NULL"," "]}]`)
		require.Equal(t, http.StatusOK, r.status, r.Error)
		require.Len(t, r.IDs, 4)
		require.Equal(t, []string{"user:1", "team:7"}, audienceOf(t, r.IDs[0]))
		require.Nil(t, audienceOf(t, r.IDs[1]))
		require.Nil(t, audienceOf(t, r.IDs[2]))
		require.Equal(t, []string{`a "quoted", {braced} \ value`, "NULL", " "}, audienceOf(t, r.IDs[3]))
	})

	t.Run("BadAudience", func(t *testing.T) {
		before := ps.count(t)
		tooMany := `"` + strings.Repeat(`x","`, batch.MaxAudience) + `x"`
		for _, tc := range []struct {
			name, body string
			index      int
			contains   string
		}{
			{"empty array", `{"stream":"s","data":"x","audience":[]}`, 0, "0 values"},
			{"empty value", `[{"stream":"s","data":"x"},{"stream":"s","data":"x","audience":["a",""]}]`, 1, "audience[1] is empty"},
			{"NUL in value", `{"stream":"s","data":"x","audience":["a\u0000b"]}`, 0, "audience[0]"},
			{"too many", `{"stream":"s","data":"x","audience":[` + tooMany + `]}`, 0, fmt.Sprint(batch.MaxAudience+1, " values")},
			{"not an array", `{"stream":"s","data":"x","audience":"a"}`, 0, "array of strings"},
			{"not strings", `[{"stream":"s","data":"x"},{"stream":"s","data":"x","audience":[1]}]`, 1, "array of strings"},
			{"null value", `{"stream":"s","data":"x","audience":[null]}`, 0, "audience[0] is empty"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := ps.post(t, tc.body)
				require.Equal(t, http.StatusBadRequest, r.status, r.Error)
				require.NotNil(t, r.Index, r.Error)
				require.Equal(t, tc.index, *r.Index)
				require.Equal(t, "audience", r.Field, r.Error)
				require.Contains(t, r.Error, tc.contains)
			})
		}
		require.Equal(t, before, ps.count(t), "nothing stored")
	})
}
