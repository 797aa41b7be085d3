package meter

import "encoding/binary"

// wavMillis reads a WAV file's duration from its RIFF header: the data
// chunk's size over the fmt chunk's byte rate.
func wavMillis(b []byte) (int64, bool) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, false
	}
	var byteRate int64
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if body+12 > len(b) {
				return 0, false
			}
			byteRate = int64(binary.LittleEndian.Uint32(b[body+8:]))
		case "data":
			if byteRate <= 0 {
				return 0, false
			}
			return size * 1000 / byteRate, true
		}
		next := int64(body) + size + size&1 // chunks are word-aligned
		if next > int64(len(b)) {
			return 0, false
		}
		off = int(next)
	}
	return 0, false
}

// mp3 bitrates in kbit/s by [MPEG-1?][layer 1..3][index].
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

// mp3Millis reads an MP3 file's duration from its first frame header: the
// frame count of a Xing/Info or VBRI header when present (VBR files), else
// the file length over the bitrate (CBR). b is the file's start, total its
// full length.
func mp3Millis(b []byte, total int64) (int64, bool) {
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
		return frames * samples * 1000 / sampleRate, true
	}
	if frames, ok := vbriFrames(h); ok {
		return frames * samples * 1000 / sampleRate, true
	}
	kbps := mp3Bitrate(mpeg1, layer, brIdx)
	audio := total - int64(off)
	if audio <= 0 {
		return 0, false
	}
	return audio * 8 / kbps, true
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
