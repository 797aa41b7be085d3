package media_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/media"
	"github.com/tollgate/tollgate/internal/media/mediatest"
)

// FuzzAudioDuration feeds AudioDuration any head, tail and length: it
// must not panic, and what it reports is a length the meter can charge:
// never negative, never past MaxDuration (so sums of many files and
// their milliseconds cannot overflow).
func FuzzAudioDuration(f *testing.F) {
	for _, seed := range [][]byte{wav(16000, 800, 0), wav(16000, 800, 0xffffffff), mediatest.FLAC(44100, 441000),
		mediatest.Opus(48000), mediatest.Vorbis(22050, 22050), mediatest.MP3CBR(16000), mediatest.MP3Xing(100),
		append([]byte("ID3\x04\x00\x10\x00\x00\x00\x00"), mediatest.MP3CBR(400)...)} {
		f.Add(seed, seed, int64(len(seed)))
		f.Add(seed, []byte(nil), int64(0))
		f.Add(seed[:len(seed)/2], seed, int64(1)<<62)
	}
	f.Fuzz(func(t *testing.T, head, tail []byte, total int64) {
		d, ok := media.AudioDuration(head, tail, total)
		if d < 0 || d > media.MaxDuration {
			t.Fatalf("AudioDuration = %v, %v: outside [0, %v]", d, ok, media.MaxDuration)
		}
		if !ok && d != 0 {
			t.Fatalf("AudioDuration = %v, false: a length for what it could not read", d)
		}
		if ms := media.Millis(d); ms < 0 || ms > media.Millis(media.MaxDuration) {
			t.Fatalf("Millis(%v) = %d", d, ms)
		}
	})
}

// TestAudioDurationBounded: headers claiming an absurd length (a CBR MP3
// of an exabyte, as a wrong Content-Range would say) give MaxDuration,
// not an overflowed, negative one the meter would credit.
func TestAudioDurationBounded(t *testing.T) {
	t.Parallel()
	mp3 := mediatest.MP3CBR(16000)
	for _, total := range []int64{1 << 50, 1 << 60, 1<<63 - 1} {
		d, ok := media.AudioDuration(mp3, nil, total)
		if !ok || d != media.MaxDuration {
			t.Errorf("a CBR MP3 of %d bytes: %v, %v; want %v, true", total, d, ok, media.MaxDuration)
		}
	}
	if ms := media.Millis(time.Duration(1<<63 - 1)); ms != media.Millis(media.MaxDuration) {
		t.Errorf("Millis of the largest duration = %d, want %d", ms, media.Millis(media.MaxDuration))
	}
}
