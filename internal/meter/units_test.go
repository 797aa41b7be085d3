package meter

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"testing"

	"github.com/tollgate/tollgate/internal/media/mediatest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func encodePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeGIF(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black}), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// webpLossless is the header of a VP8L WebP of w×h (pixel data omitted:
// only the header is read).
func webpLossless(w, h int) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f")
	bits := uint32(w-1) | uint32(h-1)<<14
	b = binary.LittleEndian.AppendUint32(b, bits)
	return append(b, make([]byte, 16)...)
}

// webpLossy is the header of a VP8 WebP of w×h.
func webpLossy(w, h int) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00\x00\x00\x00\x9d\x01\x2a")
	b = binary.LittleEndian.AppendUint16(b, uint16(w))
	b = binary.LittleEndian.AppendUint16(b, uint16(h))
	return append(b, make([]byte, 16)...)
}

// wav is a 16-bit mono PCM WAV of ms milliseconds at 16 kHz.
func wav(ms int) []byte {
	const rate, bytesPerSample = 16000, 2
	data := make([]byte, rate*bytesPerSample*ms/1000)
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+len(data)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(rate), uint32(rate * bytesPerSample), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func multipartBody(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("prompt", "colorize this please, with vivid colours and no artefacts at all")
	for name, data := range files {
		fw, err := mw.CreateFormFile("file", name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(data)
	}
	_ = mw.Close()
	return b.Bytes()
}

func TestRequestUnits(t *testing.T) {
	png1 := encodePNG(t, 1024, 768) // 0.786432 MP
	jpg := encodeJPEG(t, 640, 480)  // 0.3072 MP
	jsonBody := func(v any) []byte { b, _ := json.Marshal(v); return b }
	// 4 s of Opus whose last page lies past the first 64 KiB.
	longOpus := append(mediatest.OggPage(5, 0, 0, 2, append([]byte("OpusHead\x01\x01"), 0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0)),
		mediatest.OggPage(5, 1, 96000, 0, make([]byte, 100<<10))...)
	longOpus = append(longOpus, mediatest.OggPage(5, 2, 192000, 4, make([]byte, 100))...)
	tests := []struct {
		name string
		body []byte
		want tollgate.Units
	}{
		{"empty", nil, tollgate.Units{}},
		{"chat json", []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), tollgate.Units{}},
		{"raw png", png1, tollgate.Units{Images: 1, MegapixelMillis: 786}},
		{"raw gif", encodeGIF(t, 100, 100), tollgate.Units{Images: 1, MegapixelMillis: 10}},
		{"raw webp lossless", webpLossless(2000, 1000), tollgate.Units{Images: 1, MegapixelMillis: 2000}},
		{"raw webp lossy", webpLossy(800, 600), tollgate.Units{Images: 1, MegapixelMillis: 480}},
		{"wav", wav(2500), tollgate.Units{AudioMillis: 2500}},
		{"mp3 cbr", mediatest.MP3CBR(160000), tollgate.Units{AudioMillis: 10000}},
		{"mp3 xing", mediatest.MP3Xing(100), tollgate.Units{AudioMillis: 2612}}, // 100*1152/44100 s
		{"multipart two images", multipartBody(t, map[string][]byte{"a.png": png1, "b.jpg": jpg}),
			tollgate.Units{Images: 2, MegapixelMillis: 786 + 307}},
		{"multipart audio", multipartBody(t, map[string][]byte{"v.wav": wav(1500)}), tollgate.Units{AudioMillis: 1500}},
		{"json data url", jsonBody(map[string]any{"image": "data:image/png;base64," + base64.StdEncoding.EncodeToString(png1)}),
			tollgate.Units{Images: 1, MegapixelMillis: 786}},
		{"json raw base64 list", jsonBody(map[string]any{"images": []string{
			base64.StdEncoding.EncodeToString(jpg), base64.StdEncoding.EncodeToString(webpLossless(1000, 1000))}}),
			tollgate.Units{Images: 2, MegapixelMillis: 307 + 1000}},
		{"json openai vision", jsonBody(map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(jpg)}}}}}}),
			tollgate.Units{Images: 1, MegapixelMillis: 307}},
		{"json base64 audio", jsonBody(map[string]any{"audio": base64.StdEncoding.EncodeToString(wav(3000))}), tollgate.Units{AudioMillis: 3000}},
		{"flac", mediatest.FLAC(44100, 441000), tollgate.Units{AudioMillis: 10000}},
		{"multipart ogg opus", multipartBody(t, map[string][]byte{"v.opus": mediatest.Opus(48000 * 3)}), tollgate.Units{AudioMillis: 3000}},
		{"json base64 ogg longer than a header's read", jsonBody(map[string]any{"audio": base64.StdEncoding.EncodeToString(longOpus)}),
			tollgate.Units{AudioMillis: 4000}},
		{"truncated png", png1[:10], tollgate.Units{}},
		{"text", []byte("hello there"), tollgate.Units{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := requestUnits(tt.body)
			got.Megapixels = 0
			if got != tt.want {
				t.Errorf("units = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLargeJPEGHeaderReadFromWholeBase64(t *testing.T) {
	// A JPEG whose frame header sits after 100 KiB of comment segments:
	// the prefix is not enough, the whole string is decoded.
	jpg := encodeJPEG(t, 320, 200)
	com := []byte{0xff, 0xfe, 0xff, 0xf0}
	var b bytes.Buffer
	b.Write(jpg[:2])
	for range 2 {
		b.Write(com)
		b.Write(bytes.Repeat([]byte{'x'}, 0xfff0-2))
	}
	b.Write(jpg[2:])
	body, _ := json.Marshal(map[string]string{"image": base64.StdEncoding.EncodeToString(b.Bytes())})
	if got := requestUnits(body); got.Images != 1 || got.MegapixelMillis != 64 {
		t.Errorf("units = %+v, want 1 image of 0.064 MP", got)
	}
}
