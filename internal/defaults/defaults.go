package defaults

// Number is what a Config field with a numeric default can be.
type Number interface {
	~int | ~int32 | ~int64 | ~float64 // ~int64 includes time.Duration
}

// Positive sets *v to def unless *v is above zero.
func Positive[T Number](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ZeroOrOff sets *v to def when it is zero, and to zero when it is
// negative: for fields where zero means "the default" and a negative value
// means "none" (no wait, no pause).
func ZeroOrOff[T Number](v *T, def T) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		*v = 0
	}
}
