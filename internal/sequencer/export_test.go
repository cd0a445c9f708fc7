package sequencer

// PendingPokes is how many pokes wait to be served (0 or 1).
func (s *Sequencer) PendingPokes() int { return len(s.pokes) }
