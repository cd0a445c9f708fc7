package sequencer

import "github.com/jackc/pgx/v5"

// PendingPokes is how many pokes wait to be served (0 or 1).
func (s *Sequencer) PendingPokes() int { return len(s.pokes) }

// ConnConfig is the configuration of the sequencer's connection.
func (s *Sequencer) ConnConfig() (*pgx.ConnConfig, error) { return s.connConfig() }
