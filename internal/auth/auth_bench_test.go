package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkSubscriber is the cost of authorizing one GET /events with two
// streams, per algorithm family: what each (re)connect pays.
func BenchmarkSubscriber(b *testing.B) {
	k := keys()
	clk := newClock()
	a := newAuthorizer(b, Config{Secret: testSecret, PublicKeyFile: writePEM(b, &k.rsa.PublicKey, &k.p256.PublicKey, k.ed.Public()), Now: clk.Now})
	for _, tc := range []struct {
		method jwt.SigningMethod
		key    any
	}{
		{jwt.SigningMethodHS256, testSecret},
		{jwt.SigningMethodRS256, k.rsa},
		{jwt.SigningMethodES256, k.p256},
		{jwt.SigningMethodEdDSA, k.ed},
	} {
		b.Run(tc.method.Alg(), func(b *testing.B) {
			tok := sign(b, tc.method, tc.key, claims(clk.Now(), "alice", "orders:*", "user:{sub}"))
			r := newRequest("GET", withHeader(tok))
			streams := []string{"orders:1", "user:alice"}
			b.ReportAllocs()
			for b.Loop() {
				if _, aerr := a.Subscriber(r, streams); aerr != nil {
					b.Fatal(aerr)
				}
			}
		})
	}
}
