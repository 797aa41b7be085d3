package gradiotest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// App chooses the emulated app's shape.
type App int

const (
	// AppDemo is the small voice-cloning demo: /generate_audio with text,
	// prompt_audio, mode and speed, and /normalize_text.
	AppDemo App = iota
	// AppCosyVoiceWebUI is shaped like CosyVoice's own webui.py (as
	// served for Fun-CosyVoice3-0.5B): its components, and its three
	// functions in their order: /generate_seed (fn 0), /generate_audio
	// (fn 1, a generator of ten inputs: tts_text, mode_checkbox_group,
	// sft_dropdown, prompt_text, prompt_wav_upload, prompt_wav_record,
	// instruct_text, seed, stream, speed) and /change_instruction (fn 2).
	AppCosyVoiceWebUI
)

// WebUIModes are webui.py's inference_mode_list: pretrained voice, 3 s
// voice cloning (zero-shot), cross-lingual cloning, instruct.
func WebUIModes() []string {
	return []string{"预训练音色", "3s极速复刻", "跨语种复刻", "自然语言控制"}
}

// Component ids of the webui in its Blocks config, in the order webui.py
// creates them.
const (
	wuText = iota + 1
	wuMode
	wuInstruction
	wuSpeaker
	wuStream
	wuSpeed
	wuSeedButton
	wuSeed
	wuPromptUpload
	wuPromptRecord
	wuPromptText
	wuInstructText
	wuGenerate
	wuAudio
)

func webuiEndpoints() []endpoint {
	return []endpoint{
		{apiName: "generate_seed", outputs: []int{wuSeed}, targets: [][]any{{wuSeedButton, "click"}}},
		{
			apiName: "generate_audio",
			inputs: []int{wuText, wuMode, wuSpeaker, wuPromptText, wuPromptUpload, wuPromptRecord, wuInstructText,
				wuSeed, wuStream, wuSpeed},
			outputs: []int{wuAudio},
			params: []string{"tts_text", "mode_checkbox_group", "sft_dropdown", "prompt_text", "prompt_wav_upload",
				"prompt_wav_record", "instruct_text", "seed", "stream", "speed"},
			generator: true,
			targets:   [][]any{{wuGenerate, "click"}},
		},
		{
			apiName: "change_instruction", inputs: []int{wuMode}, outputs: []int{wuInstruction},
			params: []string{"mode_checkbox_group"}, targets: [][]any{{wuMode, "change"}},
		},
	}
}

// webuiInstructions is webui.py's instruct_dict.
func webuiInstructions() map[string]string {
	m := WebUIModes()
	return map[string]string{
		m[0]: "1. 选择预训练音色\n2. 点击生成音频按钮",
		m[1]: "1. 选择prompt音频文件，或录入prompt音频，注意不超过30s，若同时提供，优先选择prompt音频文件\n2. 输入prompt文本\n3. 点击生成音频按钮",
		m[2]: "1. 选择prompt音频文件，或录入prompt音频，注意不超过30s，若同时提供，优先选择prompt音频文件\n2. 点击生成音频按钮",
		m[3]: "1. 选择预训练音色\n2. 输入instruct文本\n3. 点击生成音频按钮",
	}
}

func textbox(label string, value any) map[string]any {
	return map[string]any{"name": "textbox", "label": label, "value": value, "lines": 1, "max_lines": 20,
		"show_label": true, "container": true, "min_width": 160, "visible": true, "type": "text", "_selectable": false}
}

func webuiComponents() []component {
	modes := WebUIModes()
	modeChoices, modeEnum := make([]any, len(modes)), make([]any, len(modes))
	quoted := make([]string, len(modes))
	for i, m := range modes {
		modeChoices[i], modeEnum[i], quoted[i] = []any{m, m}, m, "'"+m+"'"
	}
	audio := func(label string, sources []any, streaming bool) map[string]any {
		return map[string]any{"name": "audio", "label": label, "sources": sources, "type": "filepath",
			"show_label": true, "container": true, "min_width": 160, "visible": true, "streaming": streaming,
			"autoplay": streaming, "show_download_button": true, "editable": true, "format": "wav", "_selectable": false}
	}
	number := func(label string, value float64, extra map[string]any) map[string]any {
		p := map[string]any{"name": "number", "label": label, "value": value, "show_label": true, "container": true,
			"min_width": 160, "visible": true, "precision": nil, "minimum": nil, "maximum": nil, "step": 1, "_selectable": false}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	str := map[string]any{"type": "string"}
	return []component{
		{id: wuText, typ: "textbox", hasValue: true, api: str, pyType: "str", example: "Hello!!",
			props: textbox("输入合成文本", "我是通义实验室语音团队全新推出的生成式语音大模型，提供舒适自然的语音合成能力。")},
		{id: wuMode, typ: "radio", hasValue: true, props: map[string]any{
			"name": "radio", "label": "选择推理模式", "choices": modeChoices, "value": modes[0], "type": "value",
			"show_label": true, "container": true, "min_width": 160, "visible": true, "rtl": false, "_selectable": false,
		}, api: map[string]any{"enum": modeEnum, "title": "Radio", "type": "string"}, pyType: "Literal[" + strings.Join(quoted, ", ") + "]", example: modes[0]},
		{id: wuInstruction, typ: "textbox", hasValue: true, api: str, pyType: "str", example: "Hello!!",
			props: textbox("操作步骤", webuiInstructions()[modes[0]])},
		{id: wuSpeaker, typ: "dropdown", hasValue: true, props: map[string]any{
			"name": "dropdown", "label": "选择预训练音色", "choices": []any{[]any{"", ""}}, "value": "", "type": "value",
			"multiselect": nil, "allow_custom_value": false, "filterable": true, "show_label": true, "container": true,
			"min_width": 160, "visible": true, "_selectable": false,
		}, api: map[string]any{"enum": []any{""}, "title": "Dropdown", "type": "string"}, pyType: "Literal['']", example: ""},
		{id: wuStream, typ: "radio", hasValue: true, props: map[string]any{
			"name": "radio", "label": "是否流式推理", "choices": []any{[]any{"否", false}, []any{"是", true}}, "value": false,
			"type": "value", "show_label": true, "container": true, "min_width": 160, "visible": true, "_selectable": false,
		}, api: map[string]any{"enum": []any{false, true}, "title": "Radio", "type": "string"}, pyType: "Literal[False, True]", example: false},
		{id: wuSpeed, typ: "number", hasValue: true, api: map[string]any{"type": "number"}, pyType: "float", example: 3,
			props: number("速度调节(仅支持非流式推理)", 1, map[string]any{"minimum": 0.5, "maximum": 2.0, "step": 0.1})},
		{id: wuSeedButton, typ: "button", props: map[string]any{"name": "button", "value": "\U0001F3B2", "variant": "secondary", "visible": true, "interactive": true}},
		{id: wuSeed, typ: "number", hasValue: true, api: map[string]any{"type": "number"}, pyType: "float", example: 3,
			props: number("随机推理种子", 0, nil)},
		{id: wuPromptUpload, typ: "audio", hasValue: true, api: fileDataSchema(), pyType: "filepath", example: fileDataExample(),
			props: audio("选择prompt音频文件，注意采样率不低于16khz", []any{"upload"}, false)},
		{id: wuPromptRecord, typ: "audio", hasValue: true, api: fileDataSchema(), pyType: "filepath", example: fileDataExample(),
			props: audio("录制prompt音频文件", []any{"microphone"}, false)},
		{id: wuPromptText, typ: "textbox", hasValue: true, api: str, pyType: "str", example: "Hello!!",
			props: textbox("输入prompt文本", "")},
		{id: wuInstructText, typ: "textbox", hasValue: true, api: str, pyType: "str", example: "Hello!!",
			props: textbox("输入instruct文本", "")},
		{id: wuGenerate, typ: "button", props: map[string]any{"name": "button", "value": "生成音频", "variant": "secondary", "visible": true, "interactive": true}},
		{id: wuAudio, typ: "audio", api: fileDataSchema(), pyType: "filepath", example: fileDataExample(),
			props: audio("合成音频", []any{"upload", "microphone"}, true)},
	}
}

// webuiCall runs one of the webui's functions.
func (s *Server) webuiCall(ctx context.Context, ev *event) ([]any, error) {
	switch s.fns[ev.fn].apiName {
	case "generate_seed":
		return []any{map[string]any{"__type__": "update", "value": 42}}, nil
	case "change_instruction":
		mode, _ := ev.data[0].(string)
		return []any{webuiInstructions()[mode]}, nil
	}
	return s.webuiGenerate(ctx, ev)
}

// webuiGenerate is webui.py's generate_audio: it checks the mode's inputs
// as the webui does (a gr.Warning and a second of silence when one is
// missing; webui.py sends no progress, and its other logs go to the
// server's log only), then yields the synthesized speech once, a 16-bit mono WAV at
// Options.SampleRate lasting len(tts_text runes) × SecondsPerChar / speed.
func (s *Server) webuiGenerate(ctx context.Context, ev *event) ([]any, error) {
	if len(ev.data) != 10 {
		return nil, fmt.Errorf("expected 10 inputs, got %d", len(ev.data))
	}
	text, _ := ev.data[0].(string)
	mode, ok := ev.data[1].(string)
	modes := WebUIModes()
	if !ok || !contains(modes, mode) {
		return nil, appError{fmt.Sprintf("Value: %s is not in the list of choices: %s", pyRepr(ev.data[1]), pyList(modes))}
	}
	promptText, _ := ev.data[3].(string)
	instructText, _ := ev.data[6].(string)
	upload, err := s.inputFile(ev.data[4])
	if err != nil {
		return nil, err
	}
	record, err := s.inputFile(ev.data[5])
	if err != nil {
		return nil, err
	}
	speed, ok := ev.data[9].(float64)
	if !ok || speed <= 0 {
		speed = 1
	}
	prompt := upload
	if prompt == "" {
		prompt = record
	}
	warning := ""
	switch {
	case mode == modes[0]:
		warning = "没有可用的预训练音色！" // Fun-CosyVoice3 has no pretrained voices
	case mode == modes[3] && instructText == "":
		warning = "您正在使用自然语言控制模式, 请输入instruct文本"
	case (mode == modes[1] || mode == modes[2]) && prompt == "":
		warning = "prompt音频为空，您是否忘记输入prompt音频？"
	case mode == modes[1] && promptText == "":
		warning = "prompt文本为空，您是否忘记输入prompt文本？"
	}
	samples := s.opts.SampleRate // default_data: one second of silence
	if warning != "" {
		s.sendLog(ev, "warning", warning)
	} else {
		samples = int(math.Round(float64(utf8.RuneCountInString(text)) * s.opts.SecondsPerChar / speed * float64(s.opts.SampleRate)))
	}
	if err := s.wait(ctx, ev); err != nil {
		return nil, err
	}
	path, err := s.store("audio.wav", SineWAV(s.opts.SampleRate, samples, 440))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ev.exec.Audio, ev.exec.AudioSecs = path, float64(samples)/float64(s.opts.SampleRate)
	s.mu.Unlock()
	out := []any{map[string]any{
		"path": path, "url": ev.root + apiPrefix + "/file=" + path, "size": nil, "orig_name": "audio.wav",
		"mime_type": nil, "is_stream": false, "meta": map[string]any{"_type": "gradio.FileData"},
	}}
	s.send(ev, map[string]any{"msg": "process_generating", "success": true, "time_limit": nil,
		"output": outputData(out, 0, nil, true)})
	return out, nil
}
