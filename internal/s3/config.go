package s3

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config is where results are kept, parsed from the results URL:
//
//	s3://[ACCESS_KEY:SECRET_KEY@]bucket[/prefix]?endpoint=host:port&secure=false&region=us-east-1&create_bucket=true&lookup=path
//
// Credentials come from the URL's userinfo, else from the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
type Config struct {
	Bucket string
	// Prefix starts every object name; "" or ending in "/".
	Prefix string
	// Endpoint is host:port of the S3 API. Defaults to s3.amazonaws.com.
	Endpoint string
	// Secure uses HTTPS. Defaults to true.
	Secure bool
	// Region of the bucket. Defaults to "" (asked of the server).
	Region string
	// CreateBucket creates the bucket when it does not exist. Defaults to
	// false.
	CreateBucket bool
	// Lookup is how the bucket is addressed: path style, DNS (virtual
	// host) or auto (DNS on AWS, path elsewhere). Defaults to auto.
	Lookup minio.BucketLookupType
	// AccessKey and SecretKey are the credentials; SessionToken is
	// optional.
	AccessKey, SecretKey, SessionToken string
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseURL parses a results URL; getenv (os.Getenv) supplies credentials
// the URL does not hold. Errors never include the secret key.
func ParseURL(raw string, getenv func(string) string) (*Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("want s3://bucket/prefix?endpoint=host:port, not a URL")
	}
	if u.Scheme != "s3" {
		return nil, fmt.Errorf("want an s3:// URL, got scheme %q", u.Scheme)
	}
	if !bucketName.MatchString(u.Host) {
		return nil, fmt.Errorf("bucket %q: want 3 to 63 lowercase letters, digits, dots and hyphens", u.Host)
	}
	c := &Config{Bucket: u.Host, Endpoint: "s3.amazonaws.com", Secure: true, Lookup: minio.BucketLookupAuto}
	if p := strings.Trim(u.Path, "/"); p != "" {
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, fmt.Errorf("prefix %q: empty, . and .. segments are not allowed", p)
			}
		}
		c.Prefix = p + "/"
	}
	q := u.Query()
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			if v == "" || strings.ContainsAny(v, "/?#@") {
				return nil, fmt.Errorf("endpoint %q: want host:port", v)
			}
			c.Endpoint = v
		case "secure", "create_bucket":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s %q: want true or false", k, v)
			}
			if k == "secure" {
				c.Secure = b
			} else {
				c.CreateBucket = b
			}
		case "region":
			c.Region = v
		case "lookup":
			switch v {
			case "auto":
				c.Lookup = minio.BucketLookupAuto
			case "path":
				c.Lookup = minio.BucketLookupPath
			case "dns":
				c.Lookup = minio.BucketLookupDNS
			default:
				return nil, fmt.Errorf("lookup %q: want auto, path or dns", v)
			}
		default:
			return nil, fmt.Errorf("unknown parameter %q (want endpoint, secure, region, create_bucket or lookup)", k)
		}
	}
	if u.User != nil {
		c.AccessKey = u.User.Username()
		c.SecretKey, _ = u.User.Password()
	} else if getenv != nil {
		c.AccessKey, c.SecretKey, c.SessionToken = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return nil, fmt.Errorf("credentials: want both an access key and a secret key, or neither")
	}
	return c, nil
}

// credentials returns static credentials, or anonymous access when none
// are given.
func (c *Config) credentials() *credentials.Credentials {
	return credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken)
}
