{{/*
Helpers of the RayService chart. Names, labels, the image reference, the HF token Secret and the HF cache claim
come from the KServe chart's helpers (_shared_helpers.tpl is a symlink to charts/deepseek-ocr/templates/_helpers.tpl),
so both charts name and label their objects the same way.
*/}}

{{/* Ongoing requests per replica Serve scales towards: explicit, or 80 % of maxBatchSize (4/5 keeps it exact). */}}
{{- define "deepseek-ocr-ray.target" -}}
{{- $t := .Values.serve.autoscaling.targetOngoingRequests }}
{{- if not (kindIs "invalid" $t) }}{{ $t }}{{ else }}{{ divf (mul (int .Values.batching.maxBatchSize) 4) 5 }}{{ end }}
{{- end }}

{{/*
Builder arguments (predictor.ray_serve:build): the option names of `python -m predictor.ray_serve --help`.
*/}}
{{- define "deepseek-ocr-ray.args" -}}
{{- $v := .Values }}
{{- $a := dict "model_name" $v.model.name "device" $v.model.device "dtype" $v.model.dtype
      "attn_implementation" $v.model.attnImplementation "max_batch_size" (int $v.batching.maxBatchSize)
      "max_queue" (int $v.batching.maxQueue) "allow_remote_images" $v.remoteImages.enabled "ui" $v.server.ui
      "min_replicas" (int $v.serve.autoscaling.minReplicas) "max_replicas" (int $v.serve.autoscaling.maxReplicas)
      "num_gpus" $v.serve.gpusPerReplica "num_cpus" $v.serve.cpusPerReplica }}
{{- if $v.model.dir }}{{ $_ := set $a "model_dir" $v.model.dir }}{{ else }}{{ $_ := set $a "model_id" $v.model.id }}{{ end }}
{{- with $v.model.servedModelNames }}{{ $_ := set $a "served_model_names" . }}{{ end }}
{{- if and $v.remoteImages.enabled $v.remoteImages.allowedHosts }}{{ $_ := set $a "remote_image_hosts" $v.remoteImages.allowedHosts }}{{ end }}
{{- with $v.batching.maxBatchTokens }}{{ $_ := set $a "max_batch_tokens" (int .) }}{{ end }}
{{- with $v.server.maxNewTokens }}{{ $_ := set $a "max_new_tokens" (int .) }}{{ end }}
{{- with $v.server.defaultMaxTokens }}{{ $_ := set $a "default_max_tokens" (int .) }}{{ end }}
{{- with $v.server.requestTimeout }}{{ $_ := set $a "request_timeout" . }}{{ end }}
{{- with $v.server.maxBodyBytes }}{{ $_ := set $a "max_body_bytes" (int64 .) }}{{ end }}
{{- with $v.server.maxImagePixels }}{{ $_ := set $a "max_image_pixels" (int64 .) }}{{ end }}
{{- if not (kindIs "invalid" $v.serve.autoscaling.targetOngoingRequests) }}{{ $_ := set $a "target_ongoing_requests" $v.serve.autoscaling.targetOngoingRequests }}{{ end }}
{{- toYaml (merge (deepCopy $v.server.extraArgs) $a) }}
{{- end }}

{{/*
serveConfigV2 (Ray's ServeDeploySchema, as YAML text). The deployment options repeat what the builder derives, so
they are visible and tunable here; a serve config's deployment options override the builder's.
*/}}
{{- define "deepseek-ocr-ray.serveConfig" -}}
{{- $v := .Values }}
{{- $s := $v.serve }}
{{- $timeout := default 600 $v.server.requestTimeout }}
{{- $deployment := dict "name" "deepseek-ocr"
      "max_ongoing_requests" (add (int $v.batching.maxBatchSize) (int $v.batching.maxQueue) 8)
      "autoscaling_config" (dict "min_replicas" (int $s.autoscaling.minReplicas)
                                 "max_replicas" (int $s.autoscaling.maxReplicas)
                                 "target_ongoing_requests" (include "deepseek-ocr-ray.target" . | float64)
                                 "upscale_delay_s" $s.autoscaling.upscaleDelaySeconds
                                 "downscale_delay_s" $s.autoscaling.downscaleDelaySeconds)
      "ray_actor_options" (dict "num_cpus" $s.cpusPerReplica "num_gpus" $s.gpusPerReplica)
      "health_check_period_s" $s.healthCheckPeriodSeconds "health_check_timeout_s" $s.healthCheckTimeoutSeconds
      "graceful_shutdown_timeout_s" (default $timeout $s.gracefulShutdownTimeoutSeconds) }}
{{- $app := dict "name" "deepseek-ocr" "route_prefix" "/" "import_path" "predictor.ray_serve:build"
      "args" (include "deepseek-ocr-ray.args" . | fromYaml) "deployments" (list $deployment) }}
{{- $config := dict "applications" (list $app) }}
{{- if $s.grpc.enabled }}
{{- $_ := set $config "grpc_options" (dict "port" (int $s.grpc.port) "grpc_servicer_functions" (list "predictor.ray_serve.grpc.add_servicer")) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Environment of the Ray containers. */}}
{{- define "deepseek-ocr-ray.env" -}}
{{- $tokenSecret := include "deepseek-ocr.hfTokenSecret" . }}
- name: HF_HOME
  value: {{ .Values.storage.hfCache.mountPath | quote }}
- name: XDG_CACHE_HOME
  value: "/tmp/.cache"
- name: HF_HUB_OFFLINE
  value: {{ ternary "1" "0" .Values.huggingface.offline | quote }}
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
{{- if $tokenSecret }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $tokenSecret | quote }}
      key: {{ .Values.huggingface.token.key | quote }}
      optional: {{ .Values.huggingface.token.optional }}
{{- end }}
{{- with .Values.server.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Cross-field checks JSON Schema cannot express; each failure names the values to change. */}}
{{- define "deepseek-ocr-ray.validate" -}}
{{- $a := .Values.serve.autoscaling }}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) }}
{{- fail (printf "serve.autoscaling.maxReplicas (%d) must be >= serve.autoscaling.minReplicas (%d)" (int $a.maxReplicas) (int $a.minReplicas)) }}
{{- end }}
{{- $w := .Values.worker }}
{{- if or (lt (int $w.maxReplicas) (int $w.minReplicas)) (lt (int $w.replicas) (int $w.minReplicas)) (gt (int $w.replicas) (int $w.maxReplicas)) }}
{{- fail (printf "need worker.minReplicas (%d) <= worker.replicas (%d) <= worker.maxReplicas (%d)" (int $w.minReplicas) (int $w.replicas) (int $w.maxReplicas)) }}
{{- end }}
{{- $gpus := mulf (float64 $a.maxReplicas) (float64 .Values.serve.gpusPerReplica) }}
{{- if gt $gpus (mulf (float64 $w.maxReplicas) (float64 $w.gpu.count)) }}
{{- fail (printf "serve.autoscaling.maxReplicas x serve.gpusPerReplica (%v GPUs) exceeds worker.maxReplicas x worker.gpu.count (%d)" $gpus (mul (int $w.maxReplicas) (int $w.gpu.count))) }}
{{- end }}
{{- if and (eq (int $w.gpu.count) 0) (eq .Values.model.device "cuda") }}
{{- fail "model.device=cuda needs worker.gpu.count >= 1" }}
{{- end }}
{{- if and .Values.huggingface.token.value .Values.huggingface.token.existingSecret }}
{{- fail "set either huggingface.token.existingSecret or huggingface.token.value, not both" }}
{{- end }}
{{- $max := .Values.server.maxNewTokens }}
{{- $def := .Values.server.defaultMaxTokens }}
{{- if and (not (kindIs "invalid" $max)) (not (kindIs "invalid" $def)) (gt (int $def) (int $max)) }}
{{- fail (printf "server.defaultMaxTokens (%d) must be <= server.maxNewTokens (%d)" (int $def) (int $max)) }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the head and the workers. */}}
{{- define "deepseek-ocr-ray.podCommon" -}}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . | quote }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scheduling.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Where the GPU workers may run (arm64Only adds kubernetes.io/arch=arm64 for GB10 nodes). */}}
{{- define "deepseek-ocr-ray.workerScheduling" -}}
{{- $nodeSelector := deepCopy .Values.scheduling.nodeSelector }}
{{- if .Values.scheduling.arm64Only }}
{{- $_ := set $nodeSelector "kubernetes.io/arch" "arm64" }}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- range $k, $v := . }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
{{- end }}
{{- with .Values.scheduling.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scheduling.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scheduling.runtimeClassName }}
runtimeClassName: {{ . | quote }}
{{- end }}
{{- end }}
