package comfytest

// DDColorPrompt is an API-format DDColor workflow: LoadImage (node 1) →
// DDColor_Colorize (node 2) → SaveImage (node 3).
func DDColorPrompt(image, filenamePrefix string, modelInputSize int) map[string]any {
	return map[string]any{
		"1": map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": image}},
		"2": map[string]any{"class_type": "DDColor_Colorize", "inputs": map[string]any{"image": []any{"1", 0},
			"model_input_size": modelInputSize, "checkpoint": "ddcolor_modelscope.pth"}},
		"3": map[string]any{"class_type": "SaveImage", "inputs": map[string]any{"images": []any{"2", 0}, "filename_prefix": filenamePrefix}},
	}
}

// SonicPrompt is an API-format Sonic talking-head workflow: LoadImage
// (1), LoadAudio (2), SONIC_PreData (3), SONIC_Inference (4) and
// VHS_VideoCombine (5) saving an animated GIF.
func SonicPrompt(image, audio, filenamePrefix string, duration float64) map[string]any {
	return map[string]any{
		"1": map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": image}},
		"2": map[string]any{"class_type": "LoadAudio", "inputs": map[string]any{"audio": audio}},
		"3": map[string]any{"class_type": "SONIC_PreData", "inputs": map[string]any{"image": []any{"1", 0}, "audio": []any{"2", 0},
			"duration": duration, "min_resolution": 512, "expand_ratio": 0.2}},
		"4": map[string]any{"class_type": "SONIC_Inference", "inputs": map[string]any{"data": []any{"3", 0},
			"inference_steps": 25, "dynamic_scale": 1.0, "motion_scale": 1.0, "fps": 25.0, "seed": 1}},
		"5": map[string]any{"class_type": "VHS_VideoCombine", "inputs": map[string]any{"images": []any{"4", 0}, "frame_rate": []any{"4", 1},
			"loop_count": 0, "filename_prefix": filenamePrefix, "format": "image/gif", "pingpong": false, "save_output": true}},
	}
}
