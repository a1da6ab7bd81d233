package natstest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Operator is a decentralised-authentication set-up made for one test: an
// operator, one account of it with JetStream, and users of that account
// whose credentials files (JWT and seed) lie in the test's temporary
// directory. A server configured with Configure trusts the operator and
// knows the account, and no other.
type Operator struct {
	dir        string
	operator   nkeys.KeyPair
	opJWT      string
	account    nkeys.KeyPair
	accountPub string
	accountJWT string
	systemPub  string
	systemJWT  string
}

// NewOperator makes an operator and its account, with JetStream enabled
// and unlimited for the account.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	op, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatalf("natstest: operator key: %v", err)
	}
	opPub, _ := op.PublicKey()
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(op)
	if err != nil {
		t.Fatalf("natstest: operator JWT: %v", err)
	}
	o := &Operator{dir: t.TempDir(), operator: op, opJWT: opJWT}
	o.account, o.accountPub, o.accountJWT = newAccount(t, op)
	// JetStream needs a system account in operator mode.
	sys, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatalf("natstest: system account key: %v", err)
	}
	o.systemPub, _ = sys.PublicKey()
	if o.systemJWT, err = jwt.NewAccountClaims(o.systemPub).Encode(op); err != nil {
		t.Fatalf("natstest: system account JWT: %v", err)
	}
	return o
}

// newAccount makes an account signed by op, with JetStream unlimited.
func newAccount(t testing.TB, op nkeys.KeyPair) (nkeys.KeyPair, string, string) {
	t.Helper()
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatalf("natstest: account key: %v", err)
	}
	pub, _ := acc.PublicKey()
	claims := jwt.NewAccountClaims(pub)
	claims.Name = "hangup"
	claims.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
		MaxAckPending: jwt.NoLimit,
	}
	token, err := claims.Encode(op)
	if err != nil {
		t.Fatalf("natstest: account JWT: %v", err)
	}
	return acc, pub, token
}

// Configure makes opts trust the operator and resolve its account and
// its system account from memory.
func (o *Operator) Configure(t testing.TB, opts *server.Options) {
	t.Helper()
	claims, err := jwt.DecodeOperatorClaims(o.opJWT)
	if err != nil {
		t.Fatalf("natstest: operator JWT: %v", err)
	}
	resolver := &server.MemAccResolver{}
	for pub, token := range map[string]string{o.accountPub: o.accountJWT, o.systemPub: o.systemJWT} {
		if err := resolver.Store(pub, token); err != nil {
			t.Fatalf("natstest: store account: %v", err)
		}
	}
	opts.TrustedOperators = []*jwt.OperatorClaims{claims}
	opts.AccountResolver = resolver
	opts.SystemAccount = o.systemPub
}

// Creds writes the credentials file of a new user name of the account
// and returns its path.
func (o *Operator) Creds(t testing.TB, name string) string {
	t.Helper()
	return writeCreds(t, o.dir, name, o.account)
}

// StrangerCreds writes the credentials file of a user name of another
// account of another operator, which the server does not know.
func (o *Operator) StrangerCreds(t testing.TB, name string) string {
	t.Helper()
	op, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatalf("natstest: operator key: %v", err)
	}
	acc, _, _ := newAccount(t, op)
	return writeCreds(t, o.dir, name, acc)
}

// writeCreds writes a credentials file for a new user name signed by acc.
func writeCreds(t testing.TB, dir, name string, acc nkeys.KeyPair) string {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("natstest: user key: %v", err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	claims := jwt.NewUserClaims(pub)
	claims.Name = name
	token, err := claims.Encode(acc)
	if err != nil {
		t.Fatalf("natstest: user JWT: %v", err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatalf("natstest: credentials file: %v", err)
	}
	path := filepath.Join(dir, name+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatalf("natstest: write %s: %v", path, err)
	}
	return path
}

// NKeyUser makes a user NKey, writes its seed to a file in dir and
// returns the file and the public key a server lists in Options.Nkeys.
func NKeyUser(t testing.TB, dir string) (seedFile, publicKey string) {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("natstest: user key: %v", err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	f, err := os.CreateTemp(dir, "user-*.nk")
	if err != nil {
		t.Fatalf("natstest: seed file: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(seed); err != nil {
		t.Fatalf("natstest: seed file: %v", err)
	}
	return f.Name(), pub
}
