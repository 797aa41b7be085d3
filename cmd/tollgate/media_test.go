package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"testing"
	"time"
)

// TestMediaMeteredOnHTTPRoutes uploads pictures to an http route priced per
// image and per megapixel, raw and as multipart, as clients of a ComfyUI
// or OCR upstream do: the ledger holds their images and megapixels, the
// upstream gets the bytes unchanged, and the cost follows the price.
func TestMediaMeteredOnHTTPRoutes(t *testing.T) {
	var got [][]byte
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		got = append(got, b.Bytes())
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	g := setup(t, `routes:
  - name: colorize
    path: /colorize
    upstreams: [`+up.URL+`]
    price: {per_image: "0.01", per_megapixel: "0.02"}
`)
	tok := g.login("admin", adminPassword).AccessToken
	var pic bytes.Buffer
	if err := png.Encode(&pic, image.NewGray(image.Rect(0, 0, 1000, 500))); err != nil {
		t.Fatal(err)
	}
	upload := func(contentType string, body []byte) {
		req, _ := http.NewRequest("POST", g.URL+"/colorize", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", contentType)
		if resp, b := send(t, req); resp.StatusCode != 200 {
			t.Fatalf("upload: %d %s", resp.StatusCode, b)
		}
	}
	upload("image/png", pic.Bytes())
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	part, _ := mw.CreateFormFile("image", "photo.png")
	_, _ = part.Write(pic.Bytes())
	_ = mw.Close()
	upload(mw.FormDataContentType(), form.Bytes())
	if len(got) != 2 || !bytes.Equal(got[0], pic.Bytes()) || !bytes.Equal(got[1], form.Bytes()) {
		t.Fatal("the upstream did not receive the uploads unchanged")
	}
	var rep struct {
		Total struct {
			Requests   int64
			Images     int64
			Megapixels float64
			Cost       string
		}
	}
	if !eventually(3*time.Second, func() bool {
		_, body := g.do("GET", "/admin/v1/usage", tok, "")
		_ = json.Unmarshal(body, &rep)
		return rep.Total.Requests == 2
	}) {
		t.Fatalf("ledger: %+v", rep.Total)
	}
	// Each upload: one image of 0.5 megapixels = 0.01 + 0.5 × 0.02.
	if rep.Total.Images != 2 || rep.Total.Megapixels != 1 || rep.Total.Cost != "0.040000" {
		t.Fatalf("ledger total %+v, want 2 images, 1 megapixel, cost 0.040000", rep.Total)
	}
}
