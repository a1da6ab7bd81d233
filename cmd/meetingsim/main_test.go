package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/internal/meetingsim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listenLine = regexp.MustCompile(`listening on (https?://\S+)`)

// start runs the command with args until the test ends and returns its
// base URL and its log output.
func start(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	var url string
	require.Eventually(t, func() bool {
		m := listenLine.FindStringSubmatch(stdout.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 5*time.Second, 5*time.Millisecond, "stderr: %s", stderr.String())
	return url, &stderr
}

func TestRunServesSimulator(t *testing.T) {
	url, logs := start(t, "--meetings", "2", "--participants", "3", "--password", "pw", "--mode", "strict")
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()

	req, err := http.NewRequest(http.MethodGet, url+meetingsim.PathToken+"?conferenceID=conf-0002", nil)
	require.NoError(t, err)
	req.Header.Set(meetingsim.HeaderPassword, "pw")
	req.Header.Set(meetingsim.HeaderLoginType, "1")
	res, err := client.Do(req)
	require.NoError(t, err)
	var tr struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&tr))
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	req, err = http.NewRequest(http.MethodPost, url+meetingsim.PathHangUp+"?conferenceID=conf-0002",
		strings.NewReader(`{"bulkHangUpParticipants":["p-0002"]}`))
	require.NoError(t, err)
	req.Header.Set(meetingsim.HeaderAuthorization, tr.Data.Token)
	res, err = client.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	reqID := res.Header.Get(meetingsim.HeaderRequestID)

	res, err = client.Get(url + "/_sim/state")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), `"mode":"strict"`)
	require.Contains(t, string(body), `{"id":"conf-0001","state":"running","online":3}`)
	require.Contains(t, string(body), `{"id":"conf-0002","state":"running","online":2}`)

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), reqID) }, 5*time.Second, 5*time.Millisecond)
	require.NotContains(t, logs.String(), tr.Data.Token)
}

func TestRunServesHTTPS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	url, _ := start(t, "--tls-cert", certFile, "--tls-key", keyFile, "--access-log=false")
	require.True(t, strings.HasPrefix(url, "https://"))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	res, err := client.Get(url + "/_sim/state")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

func TestRunInjectsFaultsFromFlags(t *testing.T) {
	url, _ := start(t, "--error-rate", "1", "--latency", "1ms")
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, url+meetingsim.PathHangUp+"?conferenceID=conf-0001",
		strings.NewReader(`{"bulkHangUpParticipants":["p-0001"]}`))
	require.NoError(t, err)
	res, err := client.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
	require.Contains(t, string(body), meetingsim.CodeServiceError)
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--mode", "chaotic"},
		{"--token-mode", "single"},
		{"--token-lifetime", "-1s"},
		{"--tls-cert", "cert.pem"},
		{"--bogus"},
		{"extra"},
		{"--error-rate", "2"},
		{"--meetings", "-1"},
		{"--listen", "256.0.0.1:99999"},
		{"--tls-cert", "missing.pem", "--tls-key", "missing.key"},
	} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		require.Error(t, err, "args %q", args)
	}
	require.NoError(t, run(context.Background(), []string{"-h"}, io.Discard, io.Discard))
}

func TestParseTokenFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	cfg, err := o.simConfig()
	require.NoError(t, err)
	require.Equal(t, meetingsim.TokenModeMany, cfg.TokenMode)
	require.Equal(t, meetingsim.DefaultTokenLifetime, cfg.TokenLifetime)

	o, err = parseFlags([]string{"--token-mode", "one-live", "--token-lifetime", "4s"}, io.Discard)
	require.NoError(t, err)
	cfg, err = o.simConfig()
	require.NoError(t, err)
	require.Equal(t, meetingsim.TokenModeOneLive, cfg.TokenMode)
	require.Equal(t, 4*time.Second, cfg.TokenLifetime)

	o, err = parseFlags([]string{"--token-mode", "single"}, io.Discard)
	require.NoError(t, err)
	_, err = o.simConfig()
	require.ErrorContains(t, err, "-token-mode: ")
	require.ErrorContains(t, err, "want many or one-live")
}

func TestRunTokenModeOneLive(t *testing.T) {
	url, _ := start(t, "--token-mode", "one-live", "--token-lifetime", "4s", "--access-log=false")
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()

	token := func() string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url+meetingsim.PathToken+"?conferenceID=conf-0001", nil)
		require.NoError(t, err)
		req.Header.Set(meetingsim.HeaderPassword, "host-secret")
		req.Header.Set(meetingsim.HeaderLoginType, "1")
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		var tr struct {
			Data struct {
				Token               string `json:"token"`
				ConfTokenExpireTime int64  `json:"confTokenExpireTime"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&tr))
		require.Equal(t, int64(4), tr.Data.ConfTokenExpireTime)
		return tr.Data.Token
	}
	hangUp := func(tok string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url+meetingsim.PathHangUp+"?conferenceID=conf-0001",
			strings.NewReader(`{"bulkHangUpParticipants":["p-0001"]}`))
		require.NoError(t, err)
		req.Header.Set(meetingsim.HeaderAuthorization, tok)
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(body)
	}

	first, second := token(), token()
	status, body := hangUp(first)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, meetingsim.CodeTokenInvalid)
	status, body = hangUp(second)
	require.Equal(t, http.StatusOK, status, "body: %s", body)

	res, err := client.Get(url + "/_sim/tokens/config")
	require.NoError(t, err)
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.JSONEq(t, `{"lifetime":"4s","mode":"one-live"}`, string(b))
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns their files and a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "meetingsim test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
