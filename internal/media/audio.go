// Package media reads the facts tollgate meters and checks from media
// files' headers, without decoding samples: how long an audio file plays.
package media

import (
	"bytes"
	"encoding/binary"
	"time"
)

// HeadSize and TailSize are how many bytes of a file's start and end
// AudioDuration needs: the start holds every format's header, the end an
// Ogg stream's last page.
const (
	HeadSize = 64 << 10
	TailSize = 64 << 10
)

// AudioDuration reads how long an audio file plays from its headers: WAV
// (the data chunk over the byte rate), MP3 (a Xing/Info or VBRI frame
// count, else the length over the bitrate), FLAC (STREAMINFO's sample
// count) and Ogg Opus, Vorbis or FLAC (the last page's granule position).
// head is the file's start (HeadSize bytes suffice), tail its end (only
// Ogg needs it; nil when unknown) and total its full length (MP3 without a
// frame count needs it; 0 when unknown). It reports false for anything
// else, or when the headers do not say.
func AudioDuration(head, tail []byte, total int64) (time.Duration, bool) {
	switch {
	case len(head) >= 12 && string(head[0:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return wavDuration(head, total)
	case bytes.HasPrefix(head, []byte("fLaC")):
		return flacDuration(head[4:])
	case bytes.HasPrefix(head, []byte("OggS")):
		return oggDuration(head, tail)
	}
	return mp3Duration(head, total)
}

// MaxDuration is the longest length AudioDuration reports: headers that
// claim more (a wrong length, a stream's placeholder size) give this, so
// a length, its milliseconds and the sum over a call's files never
// overflow. It is far past any audio a call returns; the meter charges
// at most a route's max_output_audio anyway.
const MaxDuration = 100_000 * time.Hour

// Millis rounds d, taken within [0, MaxDuration], to the nearest
// millisecond, the ledger's unit of audio.
func Millis(d time.Duration) int64 {
	d = min(max(d, 0), MaxDuration)
	return int64((d + time.Millisecond/2) / time.Millisecond)
}

// seconds converts n units of rate per second to a duration, at most
// MaxDuration, without overflow for any 32-bit rate.
func seconds(n, rate int64) time.Duration {
	if rate <= 0 || n < 0 {
		return 0
	}
	whole, rest := n/rate, n%rate
	if whole >= int64(MaxDuration/time.Second) {
		return MaxDuration
	}
	return time.Duration(whole)*time.Second + time.Duration(rest*int64(time.Second)/rate)
}

// wavDuration reads the fmt chunk's byte rate and the data chunk's size
// (a size of 0xFFFFFFFF or past the file, as streaming writers leave it,
// is taken as the rest of the file).
func wavDuration(b []byte, total int64) (time.Duration, bool) {
	var byteRate int64
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := int64(off + 8)
		switch id {
		case "fmt ":
			if body+12 > int64(len(b)) {
				return 0, false
			}
			byteRate = int64(binary.LittleEndian.Uint32(b[body+8:]))
		case "data":
			if byteRate <= 0 {
				return 0, false
			}
			if total > 0 && (size == 0xffffffff || body+size > total) {
				size = total - body
			}
			return seconds(size, byteRate), true
		}
		next := body + size + size&1 // chunks are word-aligned
		if next > int64(len(b)) {
			return 0, false
		}
		off = int(next)
	}
	return 0, false
}

// flacDuration reads STREAMINFO, the first metadata block: a 20-bit
// sample rate and a 36-bit sample count (0 when the encoder did not know).
func flacDuration(b []byte) (time.Duration, bool) {
	if len(b) < 4+18 || b[0]&0x7f != 0 {
		return 0, false
	}
	si := b[4:]
	rate := int64(si[10])<<12 | int64(si[11])<<4 | int64(si[12])>>4
	samples := int64(si[13]&0x0f)<<32 | int64(binary.BigEndian.Uint32(si[14:18]))
	if rate == 0 || samples == 0 {
		return 0, false
	}
	return seconds(samples, rate), true
}

// oggDuration reads the codec from the first page's packet (Opus: 48 kHz
// granules less the pre-skip; Vorbis: its sample rate; FLAC: its
// STREAMINFO's rate) and the stream's length from the granule position of
// the last page of the same stream in tail.
func oggDuration(head, tail []byte) (time.Duration, bool) {
	if len(head) < 27 {
		return 0, false
	}
	serial := binary.LittleEndian.Uint32(head[14:18])
	segments := int(head[26])
	start := 27 + segments
	if len(head) < start+19 {
		return 0, false
	}
	packet := head[start:]
	var rate, skip int64
	switch {
	case bytes.HasPrefix(packet, []byte("OpusHead")):
		rate, skip = 48000, int64(binary.LittleEndian.Uint16(packet[10:12]))
	case bytes.HasPrefix(packet, []byte("\x01vorbis")) && len(packet) >= 16:
		rate = int64(binary.LittleEndian.Uint32(packet[12:16]))
	case bytes.HasPrefix(packet, []byte("\x7fFLAC")) && len(packet) >= 13+4+18:
		si := packet[13+4:]
		rate = int64(si[10])<<12 | int64(si[11])<<4 | int64(si[12])>>4
	default:
		return 0, false
	}
	if rate <= 0 {
		return 0, false
	}
	granule, ok := lastGranule(tail, serial)
	if !ok {
		return 0, false
	}
	return seconds(max(0, granule-skip), rate), true
}

// lastGranule finds the last page of stream serial in b and returns its
// granule position (pages whose position is -1 end no packet and are
// passed over).
func lastGranule(b []byte, serial uint32) (int64, bool) {
	for end := len(b); end > 0; {
		i := bytes.LastIndex(b[:end], []byte("OggS"))
		if i < 0 {
			return 0, false
		}
		end = i
		if i+27 > len(b) || b[i+4] != 0 || binary.LittleEndian.Uint32(b[i+14:]) != serial {
			continue
		}
		g := int64(binary.LittleEndian.Uint64(b[i+6:]))
		if g < 0 {
			continue
		}
		return g, true
	}
	return 0, false
}

// mp3Bitrate is a frame's bitrate in kbit/s by [MPEG-1?][layer 1..3][index].
func mp3Bitrate(mpeg1 bool, layer, idx int) int64 {
	tables := [2][3][15]int64{
		{ // MPEG-2 and 2.5
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		},
		{ // MPEG-1
			{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
			{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
		},
	}
	m := 0
	if mpeg1 {
		m = 1
	}
	return tables[m][layer-1][idx]
}

// mp3Duration reads an MP3 file's first frame header (after an ID3v2
// tag): the frame count of a Xing/Info or VBRI header when present (VBR
// files), else the file's length over the bitrate (CBR), which needs
// total.
func mp3Duration(b []byte, total int64) (time.Duration, bool) {
	off := 0
	if len(b) >= 10 && string(b[0:3]) == "ID3" {
		size := int(b[6]&0x7f)<<21 | int(b[7]&0x7f)<<14 | int(b[8]&0x7f)<<7 | int(b[9]&0x7f)
		off = 10 + size
		if b[5]&0x10 != 0 {
			off += 10
		}
	}
	if off+4 > len(b) || b[off] != 0xff || b[off+1]&0xe0 != 0xe0 {
		return 0, false
	}
	h := b[off:]
	version := h[1] >> 3 & 3 // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
	layer := 4 - int(h[1]>>1&3)
	brIdx, srIdx := int(h[2]>>4), int(h[2]>>2&3)
	if version == 1 || layer == 4 || brIdx == 0 || brIdx == 15 || srIdx == 3 {
		return 0, false
	}
	mpeg1 := version == 3
	rates := map[byte][3]int64{3: {44100, 48000, 32000}, 2: {22050, 24000, 16000}, 0: {11025, 12000, 8000}}
	sampleRate := rates[version][srIdx]
	samples := int64(1152)
	switch {
	case layer == 1:
		samples = 384
	case layer == 3 && !mpeg1:
		samples = 576
	}
	mono := h[3]>>6 == 3
	side := map[[2]bool]int{{true, false}: 32, {true, true}: 17, {false, false}: 17, {false, true}: 9}[[2]bool{mpeg1, mono}]
	if frames, ok := xingFrames(h, 4+side); ok {
		return seconds(frames*samples, sampleRate), true
	}
	if frames, ok := vbriFrames(h); ok {
		return seconds(frames*samples, sampleRate), true
	}
	kbps := mp3Bitrate(mpeg1, layer, brIdx)
	audio := total - int64(off)
	if audio <= 0 {
		return 0, false
	}
	return seconds(audio, kbps*1000/8), true // bytes over bytes per second
}

// xingFrames reads the frame count of a Xing or Info header at off.
func xingFrames(h []byte, off int) (int64, bool) {
	if off+12 > len(h) {
		return 0, false
	}
	tag := string(h[off : off+4])
	if tag != "Xing" && tag != "Info" {
		return 0, false
	}
	flags := binary.BigEndian.Uint32(h[off+4:])
	if flags&1 == 0 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint32(h[off+8:])), true
}

// vbriFrames reads the frame count of a Fraunhofer VBRI header.
func vbriFrames(h []byte) (int64, bool) {
	const off = 4 + 32
	if off+18 > len(h) || string(h[off:off+4]) != "VBRI" {
		return 0, false
	}
	return int64(binary.BigEndian.Uint32(h[off+14:])), true
}
