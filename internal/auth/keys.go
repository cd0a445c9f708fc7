package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Algorithm families; the accepted algorithms follow from the kinds of the
// configured keys, never from a token.
var (
	hmacAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs      = []string{"ES256", "ES384", "ES512"}
	ed25519Algs = []string{"EdDSA"}
)

// algsForKey is the algorithms a public key can verify.
func algsForKey(k crypto.PublicKey) []string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return rsaAlgs
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		case elliptic.P521():
			return []string{"ES512"}
		}
	case ed25519.PublicKey:
		return ed25519Algs
	}
	return nil
}

// keyFits reports whether the public key k may verify a token of algorithm
// alg. This, not the signing method's own type check, is what stops
// algorithm confusion: an HMAC algorithm never fits a public key.
func keyFits(alg string, k crypto.PublicKey) bool {
	return slices.Contains(algsForKey(k), alg)
}

// ErrNoKeys is returned by ReadPublicKeys for a file without a usable key.
var ErrNoKeys = errors.New("no public key in PEM file")

// ReadPublicKeys reads every public key of a PEM file: "PUBLIC KEY" (PKIX:
// RSA, ECDSA P-256/P-384/P-521, Ed25519), "RSA PUBLIC KEY" (PKCS #1) and
// "CERTIFICATE" blocks, in file order. Blocks of other types (a private key
// pasted by mistake) are an error, so that a misconfiguration is not silent.
func ReadPublicKeys(path string) ([]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public keys: %w", err)
	}
	keys, err := ParsePublicKeys(data)
	if err != nil {
		return nil, fmt.Errorf("public keys in %s: %w", path, err)
	}
	return keys, nil
}

// ParsePublicKeys is ReadPublicKeys on the file's contents.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for i := 1; ; i++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		k, err := parseBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", i, block.Type, err)
		}
		if algsForKey(k) == nil {
			return nil, fmt.Errorf("PEM block %d (%s): unsupported key type %T", i, block.Type, k)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	return keys, nil
}

func parseBlock(b *pem.Block) (crypto.PublicKey, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	default:
		return nil, errors.New("not a public key or certificate block")
	}
}
