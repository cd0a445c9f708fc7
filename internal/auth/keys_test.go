package auth

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParsePublicKeys(t *testing.T) {
	t.Parallel()
	k := keys()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.p384.PublicKey, k.p384)
	require.NoError(t, err)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	privDER, err := x509.MarshalPKCS8PrivateKey(k.p256)
	require.NoError(t, err)
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})

	data := append(append(append([]byte("comment lines are skipped\n"), pemOf(t, k.ed.Public(), &k.p521.PublicKey)...), pkcs1...), cert...)
	got, err := ParsePublicKeys(data)
	require.NoError(t, err)
	require.Equal(t, []any{k.ed.Public(), &k.p521.PublicKey, &k.rsa.PublicKey, &k.p384.PublicKey}, toAny(got))

	_, err = ParsePublicKeys(append(pemOf(t, &k.rsa.PublicKey), priv...))
	require.ErrorContains(t, err, "PEM block 2 (PRIVATE KEY)", "a private key in the file is a mistake, not ignored")
	_, err = ParsePublicKeys([]byte("no pem here"))
	require.ErrorIs(t, err, ErrNoKeys)
	_, err = ReadPublicKeys(filepath.Join(t.TempDir(), "missing.pem"))
	require.Error(t, err)
	_, err = New(Config{PublicKeyFile: filepath.Join(t.TempDir(), "missing.pem")})
	require.Error(t, err, "New fails on an unreadable key file")
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func TestConfigChecks(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://x/jwks", "/jwks.json", "http://", "://x"} {
		_, err := New(Config{JWKSURL: u})
		require.Error(t, err, u)
	}
	_, err := New(Config{JWKSURL: "https://idp.example/.well-known/jwks.json"})
	require.NoError(t, err, "New does no network I/O")
	_, err = New(Config{Secret: testSecret, JWKSRefreshInterval: -1})
	require.Error(t, err)
}
