<?php
// PHP streams (file_get_contents with an http context): they read no
// proxy variable at all.
$ctx = stream_context_create(['http' => [
    'method' => 'POST',
    'header' => "Content-Type: application/x-www-form-urlencoded\r\nUser-Agent: stack-client/1.0\r\n",
    'content' => stream_get_contents(STDIN),
    'timeout' => 10,
]]);
$res = file_get_contents($argv[1], false, $ctx);
if ($res === false) {
    exit(1);
}
echo $res;
