#include <filesystem>
#include <string>

#include "tests/support/http_test_util.h"
#include "tests/support/paths.h"

namespace mc::testing {

bool MakeTestCa(const std::filesystem::path& dir, std::string* log) {
  std::string d = Quote(dir.string());
  std::string cmd =
      "(set -e; cd " + d +
      "; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
      "-out ca.crt -days 2"
      " -subj /CN=mc-test-ca"
      "; openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key "
      "-out server.csr"
      " -subj /CN=127.0.0.1"
      "; printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf"
      "; openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
      " -out server.crt -days 2 -extfile ext.cnf"
      "; openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -keyout client.key -out client.csr -subj /CN=mc-test-client"
      "; printf 'extendedKeyUsage=clientAuth\\n' > client.cnf"
      "; openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
      " -out client.cert -days 2 -extfile client.cnf)";
  return Run(cmd, log) == 0;
}

}  // namespace mc::testing
