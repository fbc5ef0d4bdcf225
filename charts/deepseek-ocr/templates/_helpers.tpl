{{/*
Chart name, truncated for use in labels.
*/}}
{{- define "deepseek-ocr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name = the InferenceService name. KServe names the raw-mode Deployment and Service "<name>-predictor" and
adds pod-hash suffixes, so keep it at most 45 characters.
*/}}
{{- define "deepseek-ocr.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "deepseek-ocr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the predictor pods (set through spec.predictor.labels, so Services and policies never depend
on labels KServe chooses).
*/}}
{{- define "deepseek-ocr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deepseek-ocr.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "deepseek-ocr.predictorSelectorLabels" -}}
{{ include "deepseek-ocr.selectorLabels" . }}
app.kubernetes.io/component: "predictor"
{{- end }}

{{/*
Labels on every object. Values are quoted: label and annotation values must be strings.
*/}}
{{- define "deepseek-ocr.labels" -}}
helm.sh/chart: {{ include "deepseek-ocr.chart" . | quote }}
{{ include "deepseek-ocr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- range $k, $v := .Values.commonLabels }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}

{{/*
Predictor image reference: digest wins over tag; tag defaults to the appVersion.
*/}}
{{- define "deepseek-ocr.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the raw-mode Service KServe creates for the predictor (port 80 -> http port). */}}
{{- define "deepseek-ocr.predictorService" -}}
{{- printf "%s-predictor" (include "deepseek-ocr.fullname" .) }}
{{- end }}

{{/* HF cache claim name: the existing claim or the one the chart creates. */}}
{{- define "deepseek-ocr.hfCacheClaim" -}}
{{- default (printf "%s-hf-cache" (include "deepseek-ocr.fullname" .)) .Values.storage.hfCache.existingClaim }}
{{- end }}

{{- define "deepseek-ocr.torchCacheClaim" -}}
{{- default (printf "%s-torch-cache" (include "deepseek-ocr.fullname" .)) .Values.storage.torchCache.existingClaim }}
{{- end }}

{{- define "deepseek-ocr.torchCachePersistent" -}}
{{- if and .Values.storage.torchCache.enabled (or .Values.storage.torchCache.persistent .Values.storage.torchCache.existingClaim) }}true{{ end }}
{{- end }}

{{/* Secret holding HF_TOKEN, or empty when no token is configured. */}}
{{- define "deepseek-ocr.hfTokenSecret" -}}
{{- if .Values.huggingface.token.value }}
{{- printf "%s-hf-token" (include "deepseek-ocr.fullname" .) }}
{{- else }}
{{- .Values.huggingface.token.existingSecret }}
{{- end }}
{{- end }}

{{/*
Autoscaler in effect. `auto` asks the cluster: KEDA when it serves keda.sh/v1alpha1 (KServe then creates a
ScaledObject on the in-flight gauge), else KServe's HPA. `helm template` sees only what --api-versions lists.
*/}}
{{- define "deepseek-ocr.autoscalerClass" -}}
{{- if eq .Values.autoscaling.mode "auto" }}
{{- ternary "keda" "hpa" (.Capabilities.APIVersions.Has "keda.sh/v1alpha1") }}
{{- else }}
{{- .Values.autoscaling.mode }}
{{- end }}
{{- end }}

{{/* resources.requests.cpu in millicores ("8", 8, 0.5, "1500m"); 0 for forms the chart does not parse. */}}
{{- define "deepseek-ocr.cpuRequestMillicores" -}}
{{- $cpu := toString .Values.resources.requests.cpu }}
{{- if hasSuffix "m" $cpu }}
{{- trimSuffix "m" $cpu | int }}
{{- else if regexMatch "^([0-9]+([.][0-9]*)?|[.][0-9]+)$" $cpu }}
{{- mulf (float64 $cpu) 1000 | int }}
{{- else }}0
{{- end }}
{{- end }}

{{/*
HPA target, percent of the request. An explicit targetUtilization wins; memory defaults to 80. For cpu the
target is calibrated: the server is one busy engine thread plus HTTP work, so a saturated replica uses about
saturationCpuMillicores whatever its request; scale out at saturationPercent of that:
  round(saturationCpuMillicores x saturationPercent / request millicores), clamped to 1..100.
*/}}
{{- define "deepseek-ocr.hpaTarget" -}}
{{- $h := .Values.autoscaling.hpa }}
{{- if not (kindIs "invalid" $h.targetUtilization) }}
{{- int $h.targetUtilization }}
{{- else if eq $h.metric "memory" }}80
{{- else }}
{{- $req := int (include "deepseek-ocr.cpuRequestMillicores" .) }}
{{- if lt $req 1 }}
{{- fail (printf "resources.requests.cpu (%v) must be cores or millicores for the calibrated HPA target, or set autoscaling.hpa.targetUtilization" .Values.resources.requests.cpu) }}
{{- end }}
{{- $want := mul (int $h.saturationCpuMillicores) (int $h.saturationPercent) }}
{{- max 1 (min 100 (div (add $want (div $req 2)) $req)) }}
{{- end }}
{{- end }}

{{/*
KEDA per-replica target: an explicit targetValue, or targetUtilizationPercent of batching.maxBatchSize, computed
in integer milli-units (8 x 80 % -> "6.4") so no float rounding shows up in the manifest.
*/}}
{{- define "deepseek-ocr.kedaTarget" -}}
{{- $k := .Values.autoscaling.keda }}
{{- if not (kindIs "invalid" $k.targetValue) }}
{{- $k.targetValue | toString }}
{{- else }}
{{- $milli := mul (int .Values.batching.maxBatchSize) (int $k.targetUtilizationPercent) 10 }}
{{- $s := printf "%d.%03d" (div $milli 1000) (mod $milli 1000) }}
{{- regexReplaceAll "\\.?0+$" $s "" }}
{{- end }}
{{- end }}

{{/*
--default_max_tokens to pass, or empty. The server refuses a default above --max_new_tokens and its own default
is 4096, so a smaller maxNewTokens alone also lowers the default.
*/}}
{{- define "deepseek-ocr.defaultMaxTokens" -}}
{{- $max := .Values.server.maxNewTokens }}
{{- $def := .Values.server.defaultMaxTokens }}
{{- if not (kindIs "invalid" $def) }}
{{- int $def }}
{{- else if and (not (kindIs "invalid" $max)) (lt (int $max) 4096) }}
{{- int $max }}
{{- end }}
{{- end }}

{{/* PromQL for the in-flight requests of this InferenceService's predictor pods. */}}
{{- define "deepseek-ocr.kedaQuery" -}}
{{- if .Values.autoscaling.keda.query }}
{{- tpl .Values.autoscaling.keda.query . }}
{{- else }}
{{- printf "sum(%s{namespace=%q,pod=~%q}) or vector(0)" .Values.autoscaling.keda.metricName .Release.Namespace (printf "%s-.*" (include "deepseek-ocr.predictorService" .)) }}
{{- end }}
{{- end }}

{{/*
Cross-field checks JSON Schema cannot express; each failure names the values to change.
*/}}
{{- define "deepseek-ocr.validate" -}}
{{- $a := .Values.autoscaling }}
{{- if and (ne $a.mode "none") (lt (int $a.maxReplicas) (int $a.minReplicas)) }}
{{- fail (printf "autoscaling.maxReplicas (%d) must be >= autoscaling.minReplicas (%d)" (int $a.maxReplicas) (int $a.minReplicas)) }}
{{- end }}
{{- if and .Values.huggingface.token.value .Values.huggingface.token.existingSecret }}
{{- fail "set either huggingface.token.existingSecret or huggingface.token.value, not both" }}
{{- end }}
{{- $max := .Values.server.maxNewTokens }}
{{- $def := .Values.server.defaultMaxTokens }}
{{- if and (not (kindIs "invalid" $max)) (not (kindIs "invalid" $def)) (gt (int $def) (int $max)) }}
{{- fail (printf "server.defaultMaxTokens (%d) must be <= server.maxNewTokens (%d)" (int $def) (int $max)) }}
{{- end }}
{{- if and (eq (int .Values.resources.gpu.count) 0) (eq .Values.model.device "cuda") }}
{{- fail "model.device=cuda needs resources.gpu.count >= 1" }}
{{- end }}
{{- if and .Values.server.grpc.enabled (eq (int .Values.server.grpc.port) (int .Values.server.httpPort)) }}
{{- fail "server.grpc.port must differ from server.httpPort" }}
{{- end }}
{{- end }}
