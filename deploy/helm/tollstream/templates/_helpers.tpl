{{- define "tollstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollstream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "tollstream.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tollstream.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's objects: <fullname>-<app>. Context: dict root name */}}
{{- define "tollstream.serviceName" -}}
{{- printf "%s-%s" (include "tollstream.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: tollstream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Context: dict root name */}}
{{- define "tollstream.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "tollstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tollstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Context: dict root name */}}
{{- define "tollstream.image" -}}
{{- $image := .root.Values.image -}}
{{- printf "%s/%s/%s:%s" $image.registry $image.repositoryPrefix .name (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "tollstream.secretMountRoot" -}}/var/run/secrets/tollstream{{- end -}}

{{/*
Secret references of one service, as YAML {ENV: {name, key}}: the service's secretEnv plus the shared
secrets its sharedEnv lists. References with an empty name are left out (the variable is then set empty).
Context: dict root name svc
*/}}
{{- define "tollstream.secretEnvRefs" -}}
{{- $v := .root.Values -}}
{{- $refs := dict -}}
{{- range $env, $ref := (.svc.secretEnv | default dict) }}{{ $_ := set $refs $env $ref }}{{ end -}}
{{- $shared := .svc.sharedEnv | default list -}}
{{- if has "CLICKHOUSE_URL" $shared }}{{ $_ := set $refs "CLICKHOUSE_URL" $v.clickhouse.urlSecret }}{{ end -}}
{{- if has "MONGODB_URI" $shared }}{{ $_ := set $refs "MONGODB_URI" $v.mongodb.uriSecret }}{{ end -}}
{{- $out := dict -}}
{{- range $env, $ref := $refs }}{{ if $ref.name }}{{ $_ := set $out $env (dict "name" $ref.name "key" $ref.key) }}{{ end }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Secrets mounted as files, as YAML {ENV: {name, key, volume, mountPath, path}}: the service's secretFiles
plus the NATS credentials. Context: dict root name svc
*/}}
{{- define "tollstream.secretFiles" -}}
{{- $files := dict -}}
{{- range $env, $ref := (.svc.secretFiles | default dict) }}{{ $_ := set $files $env $ref }}{{ end -}}
{{- $_ := set $files "NATS_CREDS_FILE" .root.Values.broker.credentialsSecret -}}
{{- $out := dict -}}
{{- range $env, $ref := $files -}}
{{- if $ref.name -}}
{{- $volume := $env | lower | replace "_" "-" | trunc 63 -}}
{{- $mountPath := printf "%s/%s" (include "tollstream.secretMountRoot" $) $volume -}}
{{- $_ := set $out $env (dict "name" $ref.name "key" $ref.key "volume" $volume "mountPath" $mountPath "path" (printf "%s/%s" $mountPath $ref.key)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Plain variables of one service (its ConfigMap), as YAML {ENV: "value"}: broker and shared variables,
TLS (TLS_CLIENT_CA_FILE only with a grpc port), ports, the service's env, and the paths of mounted secret files; every other variable this chart knows
for the service is set empty (unset). Context: dict root name svc
*/}}
{{- define "tollstream.plainEnv" -}}
{{- $v := .root.Values -}}
{{- $env := dict
  "NATS_URL" $v.broker.url
  "NATS_CREDS_FILE" ""
  "TOLL_TX_PARTITIONS" (toString $v.broker.transactionPartitions)
  "NATS_STREAM_REPLICAS" (toString $v.broker.streamReplicas)
  "TOLL_TX_RETENTION_MS" (toString $v.broker.transactionRetention)
  "TOLL_DLQ_RETENTION_MS" (toString $v.broker.deadLetterRetention)
  "PROVISION_TOPOLOGY" (toString $v.broker.provisionTopology)
  "SHUTDOWN_GRACE_MS" (printf "%ds" (int $v.shutdownGraceSeconds))
  "LOG_LEVEL" $v.logLevel
-}}
{{- $shared := .svc.sharedEnv | default list -}}
{{- if has "OPERATOR_TIME_ZONE" $shared }}{{ $_ := set $env "OPERATOR_TIME_ZONE" $v.operatorTimeZone }}{{ end -}}
{{- if has "WAREHOUSE_DATABASE" $shared }}{{ $_ := set $env "WAREHOUSE_DATABASE" $v.clickhouse.database }}{{ end -}}
{{- if has "MONGODB_DATABASE" $shared }}{{ $_ := set $env "MONGODB_DATABASE" $v.mongodb.database }}{{ end -}}
{{- if has "CLICKHOUSE_URL" $shared }}{{ $_ := set $env "CLICKHOUSE_URL" "" }}{{ end -}}
{{- if has "MONGODB_URI" $shared }}{{ $_ := set $env "MONGODB_URI" "" }}{{ end -}}
{{- $tls := include "tollstream.tls" . | fromYaml -}}
{{- $_ := set $env "TLS_CERT_FILE" (ternary $tls.certFile "" $tls.enabled) -}}
{{- $_ := set $env "TLS_KEY_FILE" (ternary $tls.keyFile "" $tls.enabled) -}}
{{- $_ := set $env "TLS_RELOAD_INTERVAL" (toString $v.tls.reloadInterval) -}}
{{- $_ := set $env "TLS_OPS_HTTP" (toString $v.tls.opsHttp) -}}
{{- if .svc.ports.grpc }}{{ $_ := set $env "TLS_CLIENT_CA_FILE" (ternary (($tls.clientCa | default dict).path | default "") "" $tls.enabled) }}{{ end -}}
{{- range $_, $port := .svc.ports }}{{ $_ := set $env $port.env (toString $port.port) }}{{ end -}}
{{- range $name, $value := (.svc.env | default dict) }}{{ $_ := set $env $name (toString $value) }}{{ end -}}
{{- range $name, $_ := (.svc.secretEnv | default dict) }}{{ $_ := set $env $name "" }}{{ end -}}
{{- range $name, $_ := (.svc.secretFiles | default dict) }}{{ $_ := set $env $name "" }}{{ end -}}
{{- range $name, $file := (include "tollstream.secretFiles" . | fromYaml) }}{{ $_ := set $env $name $file.path }}{{ end -}}
{{- range $name, $_ := (include "tollstream.secretEnvRefs" . | fromYaml) }}{{ $_ := unset $env $name }}{{ end -}}
{{- toYaml $env -}}
{{- end -}}

{{/*
In-process TLS of one service (ADR 0017), as YAML {enabled, secretName, certFile, keyFile, opsHttps,
clientCa: {name, key, path}}: the global tls values with the service's own Secrets. Fails with the value
to set when the settings cannot work. Context: dict root name svc
*/}}
{{- define "tollstream.tls" -}}
{{- $global := .root.Values.tls -}}
{{- $own := .svc.tls | default dict -}}
{{- $clientCa := $own.clientCaSecret | default dict -}}
{{- $out := dict "enabled" false -}}
{{- if $global.enabled -}}
{{- $secretName := $own.secretName | default $global.secretName -}}
{{- if not $secretName -}}
{{- fail (printf "tls.enabled: set tls.secretName or services.%s.tls.secretName to an existing kubernetes.io/tls Secret (tls.crt, tls.key)" .name) -}}
{{- end -}}
{{- $root := printf "%s/tls" (include "tollstream.secretMountRoot" .) -}}
{{- $out = dict "enabled" true "secretName" $secretName "certFile" (printf "%s/tls.crt" $root) "keyFile" (printf "%s/tls.key" $root) "mountPath" $root "opsHttps" $global.opsHttp -}}
{{- if $clientCa.name -}}
{{- if not .svc.ports.grpc -}}
{{- fail (printf "services.%s.tls.clientCaSecret: mutual TLS is for gRPC ports and %s has none" .name .name) -}}
{{- end -}}
{{- $caRoot := printf "%s/tls-client-ca" (include "tollstream.secretMountRoot" .) -}}
{{- $_ := set $out "clientCa" (dict "name" $clientCa.name "key" $clientCa.key "mountPath" $caRoot "path" (printf "%s/%s" $caRoot $clientCa.key)) -}}
{{- end -}}
{{- else if $clientCa.name -}}
{{- fail (printf "services.%s.tls.clientCaSecret: mutual TLS needs tls.enabled (and a server certificate)" .name) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
