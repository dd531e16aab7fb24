package redis_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// Repro (issue 8): rediss:// to a plain-text Redis waited 25 s and said
// "context deadline exceeded". It now fails at once, saying TLS.
func TestRedissToPlaintextRedis(t *testing.T) {
	c := testClient(t) // the private plain-text test Redis
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := redisbroker.Open(ctx, "rediss://"+c.Options().Addr+"/0", redisbroker.Config{})
	if err == nil {
		t.Fatal("rediss:// to a plain-text Redis connected")
	}
	if !errors.Is(err, redisbroker.ErrNotTLS) || !strings.Contains(err.Error(), "TLS") || !strings.Contains(err.Error(), "redis://") {
		t.Fatalf("error %v, want ErrNotTLS saying TLS and suggesting redis://", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("the dial waited out its deadline: %v", err)
	}
}

// rediss:// still works with a TLS Redis (the TLS dial is conq's own).
func TestRedissToTLSRedis(t *testing.T) {
	port := startTLSRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := redisbroker.Open(ctx, "rediss://127.0.0.1:"+strconv.Itoa(port)+"/0?skip_verify=true", redisbroker.Config{})
	if err != nil {
		t.Fatalf("rediss:// to a TLS Redis: %v", err)
	}
	defer b.Close()
	if err := b.Client().Set(ctx, "conq-tls-test", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	// A certificate the client does not trust is a TLS error, not ErrNotTLS.
	_, err = redisbroker.Open(ctx, "rediss://127.0.0.1:"+strconv.Itoa(port)+"/0?dial_timeout=2s", redisbroker.Config{})
	if err == nil || errors.Is(err, redisbroker.ErrNotTLS) || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("untrusted certificate: %v", err)
	}
}

// startTLSRedis starts a private redis-server that speaks TLS only, with
// a self-signed certificate, and returns its port.
func startTLSRedis(t *testing.T) int {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Need(t, "redis-server is not in PATH", "install it (apt-get install -y redis-server)")
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, cert, key)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir)
	out, _ := os.Create(filepath.Join(dir, "redis.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); out.Close() })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return port
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
	if strings.Contains(string(log), "tls") {
		testenv.Need(t, "redis-server does not start with TLS:\n"+string(log), "install a redis-server built with TLS (Debian's is)")
	}
	t.Fatalf("TLS redis-server did not listen:\n%s", log)
	return 0
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
